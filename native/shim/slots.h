/*-------------------------------------------------------------------------
 *
 * slots.h
 *		Shared memory of the worker slots, private to slots.c,
 *		worker_slot.c, slot_control.c and slot_restart.c (the public record
 *		and API are in slot.h).
 *
 *-------------------------------------------------------------------------
 */
#ifndef TSW_SLOTS_H
#define TSW_SLOTS_H

#include "storage/lwlock.h"

#include "slot.h"

typedef struct TswShared
{
	LWLock	   *lock;
	int			nslots;
	TswSlot		slots[FLEXIBLE_ARRAY_MEMBER];
} TswShared;

extern TswShared *tsw_shared;

/* Put a slot in the state of a worker about to be (re)started. */
extern void tsw_slot_reset_for_start(TswSlot *slot);

/* Mark a slot stopped because no background worker slot was free; `what`: "not started ..." */
extern void tsw_slot_mark_no_bgworker(TswSlot *slot, const char *what);

/* This process runs slot `index`'s worker (worker_slot.c; after a claim). */
extern void tsw_slot_adopt(int index);

#endif							/* TSW_SLOTS_H */
