/*-------------------------------------------------------------------------
 *
 * pg_api.h
 *		The addon's PostgreSQL calls (pg_*.c), callable from C++.
 *
 * Every PostgreSQL call of the addon is made in C, inside PG_TRY, by one of
 * the pg_*.c files, one concern each; the js_*.cc files turn what they hand
 * back into JavaScript values.  So an ereport(ERROR) never longjmps across
 * a C++ or V8 frame.  This header includes nothing of PostgreSQL's.
 *
 *	pg_error.c	  errors copied out of PostgreSQL
 *	pg_xact.c	  transactions and savepoints
 *	pg_stmt.c	  statements: plans, parameters, execution
 *	pg_result.c	  results (SPI's tuples to cells)
 *	pg_cursor.c	  cursors (portals)
 *	pg_values.c	  values of results (Datum to cells)
 *	pg_report.c	  settings, logging, the worker's slot
 *
 *-------------------------------------------------------------------------
 */
#ifndef TSW_PG_API_H
#define TSW_PG_API_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- errors (pg_error.c) ------------------------------------------------ */

/* A PostgreSQL error, copied out of ErrorData (malloc'd). */
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
	char	   *file;			/* source file of the ereport (as node-postgres's `file`) */
	char	   *routine;		/* its function */
	int			line;			/* its line; 0 if none */
	int			position;		/* 1-based, 0 if none */
	int			internal_position;
} TswError;

/* An error made by the addon itself (bad arguments, wrong state). */
extern TswError *tsw_make_error(const char *sqlstate, const char *message);
extern void tsw_free_error(TswError *err);
extern void tsw_free_string(char *s);

/* ---- values (pg_values.c) ----------------------------------------------- */

/* How a value is handed to JavaScript (see docs/types.md). */
typedef enum TswKind
{
	TSW_KIND_TEXT = 0,			/* string: text form of the type */
	TSW_KIND_BOOL,
	TSW_KIND_INT32,				/* int2, int4: Number */
	TSW_KIND_UINT32,			/* oid, xid, cid ...: Number */
	TSW_KIND_INT64,				/* int8: BigInt */
	TSW_KIND_FLOAT64,			/* float4, float8: Number */
	TSW_KIND_BYTES,				/* bytea: Buffer */
	TSW_KIND_TIME,				/* date, timestamp, timestamptz: Date (f64 ms since the epoch; +-Infinity) */
	TSW_KIND_JSON,				/* json: JSON text, parsed */
	TSW_KIND_JSONB,				/* jsonb: a tree of cells (TswJson), built directly */
	TSW_KIND_INTERVAL,			/* interval: Interval */
	TSW_KIND_ARRAY,				/* array: nested JavaScript arrays */
	TSW_KIND_RECORD				/* composite or record: object */
} TswKind;

struct TswArray;
struct TswRecord;
struct TswJson;

/*
 * One value.  Text and bytes point into PostgreSQL's memory (the tuple, or
 * what an output function returned), valid until the result is freed: the
 * bytes are copied once, into JavaScript.
 */
typedef struct TswCell
{
	uint8_t		isnull;
	uint8_t		kind;			/* TswKind */
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
		}			text;		/* TEXT, JSON, BYTES */
		struct
		{
			int32_t		months;
			int32_t		days;
			int64_t		micros;
		}			interval;
		struct TswArray *array;
		struct TswRecord *record;
		struct TswJson *json;
	}			v;
} TswCell;

#define TSW_MAX_DIMS 6

/* Elements in row-major order; dims[0] outermost. ndims 0 is an empty array. */
typedef struct TswArray
{
	int			ndims;
	int			dims[TSW_MAX_DIMS];
	int			nelems;
	TswCell    *elems;
} TswArray;

typedef struct TswRecord
{
	int			natts;
	const char *const *names;
	TswCell    *values;
} TswRecord;

/* A jsonb value: scalars as cells; arrays and objects as lists. */
typedef enum TswJsonType
{
	TSW_JSON_NULL = 0,
	TSW_JSON_BOOL,
	TSW_JSON_NUMBER,			/* numeric: exact text, read as a Number */
	TSW_JSON_STRING,
	TSW_JSON_ARRAY,
	TSW_JSON_OBJECT
} TswJsonType;

typedef struct TswJson
{
	TswJsonType type;
	int			b;				/* BOOL */
	const char *str;			/* STRING, NUMBER (text); object keys in keys[] */
	int			len;
	int			n;				/* ARRAY, OBJECT: elements */
	struct TswJson *elems;
	const char **keys;			/* OBJECT */
	int		   *keylens;
} TswJson;

/* ---- statements (pg_stmt.c) and results (pg_result.c) -------------------- */

typedef struct TswColumn
{
	const char *name;
	uint32_t	type_oid;
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
	void	   *tuptable;		/* SPI's, freed with the result */
} TswResult;

/* Result options (flags of tsw_execute and tsw_cursor_fetch). */
#define TSW_RESULT_INT8_TEXT	0x01	/* int8 as its text form */
#define TSW_RESULT_TIME_TEXT	0x02	/* date and timestamps as their text form */

/*
 * What a parameter of a statement is, so that the caller can put a
 * JavaScript value in the right text form.  base_oid is the type with
 * domains removed; for arrays elem_oid is the element's base type; for
 * composites names are the attribute names, in order.
 */
typedef enum TswParamClass
{
	TSW_PARAM_SCALAR = 0,
	TSW_PARAM_JSON,
	TSW_PARAM_ARRAY,
	TSW_PARAM_COMPOSITE
} TswParamClass;

/*
 * The values a parameter's type takes as they are, without going through
 * its text form and input function: set only when the type itself (not a
 * domain over it, whose checks the input function runs) is one of these.
 */
typedef enum TswDirect
{
	TSW_DIRECT_NONE = 0,
	TSW_DIRECT_INT2,			/* an integral Number or BigInt in int2's range */
	TSW_DIRECT_INT4,			/* ... in int4's range */
	TSW_DIRECT_INT8,			/* ... in int8's range */
	TSW_DIRECT_FLOAT8,			/* any Number */
	TSW_DIRECT_BOOL,			/* a boolean */
	TSW_DIRECT_TEXT				/* a string: its bytes, without textin */
} TswDirect;

typedef struct TswParamType
{
	uint32_t	type_oid;
	uint32_t	base_oid;
	uint32_t	elem_oid;
	TswDirect	direct;
	TswParamClass klass;
	TswParamClass elem_class;
	int			nnames;
	const char *const *names;
} TswParamType;

/* How a parameter's value is handed over (TswParamValue.form). */
typedef enum TswValueForm
{
	TSW_VALUE_NULL = 0,			/* SQL NULL */
	TSW_VALUE_TEXT,				/* text form (UTF-8, NUL-terminated, no NUL inside) */
	TSW_VALUE_INT,				/* for TSW_DIRECT_INT2/4/8, in the type's range */
	TSW_VALUE_FLOAT,			/* for TSW_DIRECT_FLOAT8 */
	TSW_VALUE_BOOL				/* for TSW_DIRECT_BOOL */
} TswValueForm;

typedef struct TswParamValue
{
	TswValueForm form;
	size_t		len;			/* TEXT: bytes */
	union
	{
		const char *text;
		int64_t		i;
		double		f;
		int			b;
	}			v;
} TswParamValue;

/*
 * A planned statement.  Kept ones (tsw_prepare) live until tsw_plan_free,
 * across transactions; the one-shot plan of tsw_plan_statement lives until
 * tsw_execute or tsw_plan_discard.
 */
typedef struct TswPlan
{
	void	   *spi_plan;
	int			nparams;
	TswParamType *params;
	void	   *inputs;			/* input functions of params (pg_plan.c, pg_params.c) */
	int			kept;
	int			cursor_options;
	int			open_subxact;	/* statement subtransaction left open */
	void	   *memory;
} TswPlan;

/* All that return int return 0 on success, or -1 with *err set (free it). */

/*
 * Statements.  params: one TswParamValue per parameter of the plan (text
 * in UTF-8: converted to the database's encoding here).  timeout_ms: statement timeout; 0 none, -1 tsworker.statement_timeout.
 *
 * tsw_plan_statement: plan sql for one run with nparams parameters whose
 * types are inferred; opens the statement's subtransaction, so that
 * tsw_execute (which closes it) or tsw_plan_discard must follow.
 * tsw_prepare: a kept plan; ntypes type names (NULL entries are inferred).
 * tsw_execute with plan NULL runs sql without parameters.  The result
 * (with its cells) stays valid until tsw_free_result, which the caller
 * calls before the transaction ends.
 */
extern int	tsw_plan_statement(const char *sql, int nparams, int cursor_options,
							   int timeout_ms, TswPlan **plan, TswError **err);
extern void tsw_plan_discard(TswPlan *plan);
extern int	tsw_prepare(const char *sql, int ntypes, const char *const *types,
						TswPlan **plan, TswError **err);
extern void tsw_plan_free(TswPlan *plan);
extern int	tsw_execute(TswPlan *plan, const char *sql, const TswParamValue *params,
						int timeout_ms, int flags, TswResult **result, TswError **err);
extern void tsw_free_result(TswResult *result);

/* ---- transactions (pg_xact.c) ------------------------------------------- */

/*
 * statement_savepoints: run each statement in a subtransaction, so that a
 * failed one undoes only itself; without, a failed statement fails the
 * innermost savepoint or the transaction.  synchronous_commit: NULL for the
 * session's.
 */
extern int	tsw_begin(int read_only, int statement_savepoints,
					  const char *synchronous_commit, TswError **err);
extern int	tsw_savepoint(TswError **err);
/* commit: 1 release, 0 roll back */
extern int	tsw_savepoint_end(int commit, TswError **err);
extern int	tsw_commit(TswError **err);
extern int	tsw_rollback(TswError **err);
extern int	tsw_in_transaction(void);

/* ---- cursors (pg_cursor.c) ---------------------------------------------- */

/*
 * Cursors (portals), valid until the end of the transaction.  name gets the
 * portal's name (free with tsw_free_string).
 */
extern int	tsw_cursor_open(TswPlan *plan, const char *sql, const TswParamValue *params,
							char **name, TswError **err);
/* Cursor options for tsw_plan_statement (PostgreSQL's CURSOR_OPT_*). */
#define TSW_CURSOR_SCROLL		0x0002
#define TSW_CURSOR_NO_SCROLL	0x0004
extern int	tsw_cursor_fetch(const char *name, int forward, int64_t count, int flags,
							 TswResult **result, TswError **err);
extern int	tsw_cursor_move(const char *name, int forward, int64_t count,
							uint64_t *moved, TswError **err);
extern int	tsw_cursor_close(const char *name, TswError **err);

/* ---- settings, logging and the worker's slot (pg_report.c) -------------- */

/*
 * A setting's value (malloc'd; NULL when it does not exist), and whether
 * PostgreSQL knows its definition (a declared setting checked by
 * PostgreSQL, whose value is then in its base unit) or only a placeholder.
 */
extern int	tsw_get_setting(const char *name, char **value, int *defined, TswError **err);

/*
 * Make the declared settings (decls_json: a JSON array of ManifestSetting,
 * src/runtime/settings.ts) parameters of this process if they are not yet,
 * and set the values given to tsworker.launch() (settings: a JSON object),
 * all checked by PostgreSQL.  *bad (malloc'd) names every refused setting,
 * NULL when none is.
 */
extern int	tsw_define_settings(const char *worker, const char *config_name, const char *decls_json,
								const char *settings, char **bad, TswError **err);

/* level: a TswLogLevel (native/shim/log_level.h) */
extern void tsw_log(int level, const char *msg);

/* True once SIGTERM asked the worker to stop. */
extern int	tsw_shutdown_requested(void);

/* True when that was tsworker.stop() or tsworker.restart() (its slot's stop request), not a server shutdown. */
extern int	tsw_stop_requested(void);

/* The worker's slot: who it is (copied out, malloc'd strings). */
typedef struct TswSlotCopy
{
	char	   *name;
	char	   *config_name;
	char	   *module;
	char	   *settings;		/* JSON object given to tsworker.launch() */
	int			dynamic;
	int			recent_failures;
	double		wakes;			/* wakes already seen when this run started */
} TswSlotCopy;

extern int	tsw_read_slot(TswSlotCopy *out);

/*
 * The constants the runtime needs, by group ("state", "restart", "outcome",
 * "log"): their one definition is the shim's C enums; add() is called once
 * per constant.
 */
extern void tsw_describe_constants(void (*add) (void *arg, const char *group,
												const char *name, int value),
								   void *arg);
extern void tsw_free_slot(TswSlotCopy *slot);
/* state: a TswState; policy: a TswRestartPolicy; outcome: a TswOutcome (native/shim/slot.h) */
extern void tsw_report_state(int state);
extern void tsw_report_policy(int policy);
extern void tsw_report_outcome(int outcome);
extern void tsw_report_loop(void);
extern uint64_t tsw_read_wakes(void);
extern void tsw_report_error(const char *message);
/* Returns -1 if the JSON text is longer than the slot holds (maxlen set). */
extern int	tsw_report_status(const char *json, int *maxlen);

#ifdef __cplusplus
}
#endif

#endif							/* TSW_PG_API_H */
