/*
 * agent/agent.h — `outpost agent`: the workspace agent (docs/agent.md for its options,
 * docs/agent-protocol.md for what it speaks). Outbound only: it never listens.
 *
 * Threads: the control thread (the caller's) talks to the primary (manifest, credential, reports) and
 * handles signals; the relay thread (relay.h) carries control connections and streams.
 */
#ifndef OP_AGENT_AGENT_H
#define OP_AGENT_AGENT_H

/* Runs the agent; argv[0] is "agent". Returns the process exit code: 0 after SIGTERM/SIGINT, 77 when
 * the primary refuses the agent token (wrong, regenerated, workspace deleted), 78 for a bad
 * configuration, 64 for bad usage. */
int op_agent_main(int argc, char **argv);

#endif
