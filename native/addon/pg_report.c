/*-------------------------------------------------------------------------
 *
 * pg_report.c
 *		Settings, logging, and the worker's own slot, for the runtime.
 *
 * A worker's declared settings become parameters of its process through
 * the shim (tsw_check_settings, native/shim/worker_settings.c), which also
 * applies the values given to tsworker.launch(): PostgreSQL checks them.
 * Slot reports go through the shim's slot functions (native/shim/slot.h),
 * under PG_TRY like everything else here; a failed report is dropped.  The
 * constants the runtime uses (states, restart policies, outcomes, log
 * levels) are the shim's enums, described here once.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdlib.h>

#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "../shim/manifest.h"
#include "../shim/pg_tsworker.h"
#include "pg_internal.h"

static void tsw_guarded(void (*fn) (void *), void *arg);

int
tsw_get_setting(const char *name, char **value, int *defined, TswError **err)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	volatile int rc = 0;

	*value = NULL;
	*defined = 0;
	PG_TRY();
	{
		const char *v = GetConfigOption(name, true, false);

		if (v != NULL)
		{
			*value = tsw_strdup(v);
			*defined = (GetConfigOptionFlags(name, true) & GUC_CUSTOM_PLACEHOLDER) == 0;
		}
	}
	PG_CATCH();
	{
		*err = tsw_capture_error(oldcontext);
		rc = -1;
	}
	PG_END_TRY();
	return rc;
}

int
tsw_define_settings(const char *worker, const char *config_name, const char *decls_json,
					const char *settings, char **bad, TswError **err)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	MemoryContext work = AllocSetContextCreate(CurrentMemoryContext, "tsworker settings",
											   ALLOCSET_SMALL_SIZES);
	volatile int rc = 0;

	*bad = NULL;
	PG_TRY();
	{
		TswSettingDecl *decls;
		int			n;
		char	   *why;

		MemoryContextSwitchTo(work);
		n = tsw_parse_setting_decls(decls_json, &decls);
		why = tsw_check_settings(worker, config_name, decls, n, settings, true);
		if (why != NULL)
			*bad = tsw_strdup(why);
		MemoryContextSwitchTo(oldcontext);
	}
	PG_CATCH();
	{
		*err = tsw_capture_error(oldcontext);
		rc = -1;
	}
	PG_END_TRY();
	MemoryContextDelete(work);
	return rc;
}

void
tsw_log(int level, const char *msg)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	const char *name = MyBgworkerEntry ? MyBgworkerEntry->bgw_type : "?";

	PG_TRY();
	{
		ereport(TSW_ELEVEL(level),
				(errmsg_internal("tsworker \"%s\": %s", name, msg)));
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcontext);
		FlushErrorState();
	}
	PG_END_TRY();
}

int
tsw_shutdown_requested(void)
{
	return ShutdownRequestPending ? 1 : 0;
}

void
tsw_describe_constants(void (*add) (void *arg, const char *group, const char *name, int value),
					   void *arg)
{
	int			i;

	for (i = 0; i < TSW_STATE_COUNT; i++)
		add(arg, "state", tsw_state_name((TswState) i), i);
	add(arg, "restart", "on-failure", TSW_RESTART_ON_FAILURE);
	add(arg, "restart", "always", TSW_RESTART_ALWAYS);
	add(arg, "restart", "never", TSW_RESTART_NEVER);
	add(arg, "outcome", "finished", TSW_OUTCOME_FINISHED);
	add(arg, "outcome", "failed", TSW_OUTCOME_FAILED);
	add(arg, "log", "debug", TSW_LOG_DEBUG);
	add(arg, "log", "log", TSW_LOG_LOG);
	add(arg, "log", "notice", TSW_LOG_NOTICE);
	add(arg, "log", "warning", TSW_LOG_WARNING);
}

/* Run a slot report that takes an LWLock and cannot fail but in theory. */
static void
tsw_guarded(void (*fn) (void *), void *arg)
{
	MemoryContext oldcontext = CurrentMemoryContext;

	PG_TRY();
	{
		fn(arg);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcontext);
		FlushErrorState();
	}
	PG_END_TRY();
}

static void
tsw_do_read_slot(void *arg)
{
	TswSlot		slot;
	TswSlotCopy *out = (TswSlotCopy *) arg;

	if (!tsw_slot_read(&slot))
		return;
	out->name = tsw_strdup(slot.name);
	out->config_name = tsw_strdup(slot.config_name);
	out->module = tsw_strdup(slot.module);
	out->settings = tsw_strdup(slot.settings);
	out->dynamic = slot.dynamic;
	out->recent_failures = slot.recent_failures;
	out->wakes = (double) slot.wakes_base;
}

int
tsw_read_slot(TswSlotCopy *out)
{
	memset(out, 0, sizeof(*out));
	tsw_guarded(tsw_do_read_slot, out);
	return out->name != NULL ? 0 : -1;
}

void
tsw_free_slot(TswSlotCopy *slot)
{
	free(slot->name);
	free(slot->config_name);
	free(slot->module);
	free(slot->settings);
}

static void
tsw_do_state(void *arg)
{
	tsw_slot_set_state((TswState) *(int *) arg);
}

static void
tsw_do_policy(void *arg)
{
	tsw_slot_set_policy((TswRestartPolicy) *(int *) arg);
}

static void
tsw_do_outcome(void *arg)
{
	tsw_slot_set_outcome((TswOutcome) *(int *) arg);
}

static void
tsw_do_loop(void *arg)
{
	tsw_slot_note_loop();
}

static void
tsw_do_error(void *arg)
{
	tsw_slot_set_error((const char *) arg);
}

static void
tsw_do_status(void *arg)
{
	tsw_slot_set_status((const char *) arg);
}

static void
tsw_do_wakes(void *arg)
{
	*(uint64_t *) arg = tsw_slot_wakes();
}

static void
tsw_do_stop_requested(void *arg)
{
	*(int *) arg = tsw_slot_stop_requested() ? 1 : 0;
}

int
tsw_stop_requested(void)
{
	int			requested = 0;

	tsw_guarded(tsw_do_stop_requested, &requested);
	return requested;
}

void
tsw_report_state(int state)
{
	tsw_guarded(tsw_do_state, &state);
}

void
tsw_report_policy(int policy)
{
	tsw_guarded(tsw_do_policy, &policy);
}

void
tsw_report_outcome(int outcome)
{
	tsw_guarded(tsw_do_outcome, &outcome);
}

void
tsw_report_loop(void)
{
	tsw_guarded(tsw_do_loop, NULL);
}

void
tsw_report_error(const char *message)
{
	tsw_guarded(tsw_do_error, (void *) message);
}

uint64_t
tsw_read_wakes(void)
{
	uint64_t	wakes = 0;

	tsw_guarded(tsw_do_wakes, &wakes);
	return wakes;
}

int
tsw_report_status(const char *json, int *maxlen)
{
	*maxlen = TSW_STATUS_MAXLEN - 1;
	if (strlen(json) >= TSW_STATUS_MAXLEN)
		return -1;
	tsw_guarded(tsw_do_status, (void *) json);
	return 0;
}
