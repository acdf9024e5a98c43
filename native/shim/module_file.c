/*-------------------------------------------------------------------------
 *
 * module_file.c
 *		Who may have written a worker module: checked before the server
 *		loads it.
 *
 * Which files are modules (their suffixes) is the runtime's rule
 * (src/runtime/modules.ts): the shim only needs to tell a built-in
 * worker's name from an absolute path (worker_list.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/stat.h>
#include <unistd.h>

#include "pg_tsworker.h"

/*
 * A module file must be a regular file that only its owner (root or the
 * server's OS user) can write, in a directory that no one else can write
 * (unless it is sticky, like /tmp): whoever can change it runs code as the
 * server.
 */
char *
tsw_check_module_file(const char *path)
{
	struct stat st;
	char	   *dir;
	char	   *slash;

	if (stat(path, &st) != 0)
		return psprintf("module \"%s\" does not exist or cannot be read by the server: %m", path);
	if (!S_ISREG(st.st_mode))
		return psprintf("module \"%s\" is not a regular file", path);
	if (st.st_uid != 0 && st.st_uid != geteuid())
		return psprintf("module \"%s\" is owned by another OS user (uid %d)", path, (int) st.st_uid);
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		return psprintf("module \"%s\" is writable by other OS users (mode %04o)", path,
						(int) (st.st_mode & 07777));

	dir = pstrdup(path);
	slash = strrchr(dir, '/');
	if (slash != NULL)
	{
		*(slash == dir ? slash + 1 : slash) = '\0';
		if (stat(dir, &st) == 0 && (st.st_mode & (S_IWGRP | S_IWOTH)) &&
			!(st.st_mode & S_ISVTX))
			return psprintf("the directory of module \"%s\" is writable by other OS users (mode %04o)",
							path, (int) (st.st_mode & 07777));
	}
	return NULL;
}
