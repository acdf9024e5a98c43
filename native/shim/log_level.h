/*
 * log_level.h
 *		The levels of pg_tsworker's log calls (host, addon, runtime), one
 *		numbering for all.  No PostgreSQL headers: C++ includes it too.
 */
#ifndef TSW_LOG_LEVEL_H
#define TSW_LOG_LEVEL_H

typedef enum TswLogLevel
{
	TSW_LOG_DEBUG = 0,			/* DEBUG1 */
	TSW_LOG_LOG,				/* LOG */
	TSW_LOG_NOTICE,				/* NOTICE */
	TSW_LOG_WARNING				/* WARNING */
} TswLogLevel;

#endif							/* TSW_LOG_LEVEL_H */
