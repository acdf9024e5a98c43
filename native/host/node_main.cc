/*
 * node_main.cc
 *		pg_tsworker_node: a plain Node.js 18 executable built from the same
 *		libnode the workers embed.
 *
 * The postmaster runs it as a child process (never in its own address
 * space) to read the settings that worker modules declare, so that they can
 * become real configuration parameters before any worker starts.
 */
#include <node.h>

int
main(int argc, char *argv[])
{
	return node::Start(argc, argv);
}
