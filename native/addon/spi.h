/*-------------------------------------------------------------------------
 *
 * spi.h
 *		PostgreSQL-facing half of the N-API addon, callable from C++.
 *
 * spi.c makes every PostgreSQL call of the addon inside PG_TRY, in C, and
 * hands back plain structs; addon.cc turns them into JavaScript values.  So
 * an ereport(ERROR) never longjmps across a C++ or V8 frame.  This header
 * includes nothing of PostgreSQL's.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TSW_ADDON_SPI_H
#define TSW_ADDON_SPI_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A PostgreSQL error, copied out of ErrorData. */
typedef struct TswError
{
	char		sqlstate[6];
	const char *severity;		/* "ERROR", "FATAL" ... */
	char	   *message;
	char	   *detail;
	char	   *hint;
	char	   *context;
	char	   *schema;
	char	   *table;
	char	   *column;
	char	   *datatype;
	char	   *constraint;
	char	   *internal_query;
	int			position;		/* 1-based, 0 if none */
	int			internal_position;
} TswError;

/* How a result column is handed to JavaScript. */
typedef enum TswKind
{
	TSW_KIND_TEXT = 0,			/* string (text form of any type) */
	TSW_KIND_BOOL,
	TSW_KIND_INT32,				/* int2, int4, oid: Number */
	TSW_KIND_INT64,				/* int8: BigInt */
	TSW_KIND_FLOAT64			/* float4, float8: Number */
} TswKind;

typedef struct TswCell
{
	int			isnull;
	union
	{
		int			b;
		int32_t		i32;
		uint32_t	u32;
		int64_t		i64;
		double		f64;
		struct
		{
			const char *ptr;
			int			len;
		}			text;
	}			v;
} TswCell;

typedef struct TswColumn
{
	const char *name;
	uint32_t	type_oid;
	TswKind		kind;
	int			is_unsigned;	/* INT32 column holding an oid */
	int			is_narrow;		/* INT32 column of int2, FLOAT64 column of float4 */
} TswColumn;

typedef struct TswResult
{
	const char *command;		/* "SELECT", "INSERT", ... */
	uint64_t	row_count;		/* rows processed */
	int			ncolumns;
	TswColumn  *columns;
	uint64_t	nrows;			/* rows returned */
	TswCell    *cells;			/* nrows * ncolumns, row-major */
	void	   *memory;			/* owning memory context */
} TswResult;

/* All return 0 on success, or -1 with *err set (free with tsw_free_error). */
extern int	tsw_begin(int read_only, TswError **err);
extern int	tsw_savepoint(TswError **err);
/* commit: 1 release, 0 roll back */
extern int	tsw_savepoint_end(int commit, TswError **err);
extern int	tsw_commit(TswError **err);
extern int	tsw_rollback(TswError **err);
extern int	tsw_in_transaction(void);

/*
 * params[i] == NULL is SQL NULL; values are in their text form.
 * timeout_ms: statement timeout; 0 none, -1 tsworker.statement_timeout.
 */
extern int	tsw_query(const char *sql, int nparams, const char *const *params,
					  int timeout_ms, TswResult **result, TswError **err);

/* True once SIGTERM asked the worker to stop. */
extern int	tsw_shutdown_requested(void);
extern void tsw_free_result(TswResult *result);

/* *value is NULL when the setting does not exist; free with tsw_free_string. */
extern int	tsw_get_setting(const char *name, char **value, TswError **err);

/* level: 0 debug, 1 log, 2 notice, 3 warning */
extern void tsw_log(int level, const char *msg);

/* Report to the worker's shared-memory slot (see native/shim/slots.c). */
#define TSW_REPORT_RUNNING	1
#define TSW_REPORT_WAITING	2
#define TSW_REPORT_STOPPING	3
extern void tsw_report_state(int state);
extern void tsw_report_loop(void);
extern void tsw_report_restart(void);
extern uint64_t tsw_read_wakes(void);
extern void tsw_report_error(const char *message);
/* Returns -1 if the JSON text is longer than the slot holds (maxlen set). */
extern int	tsw_report_status(const char *json, int *maxlen);

extern void tsw_free_error(TswError *err);
extern void tsw_free_string(char *s);

/* Error built by the addon itself (bad arguments). */
extern TswError *tsw_make_error(const char *sqlstate, const char *message);

#ifdef __cplusplus
}
#endif

#endif							/* TSW_ADDON_SPI_H */
