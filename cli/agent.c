/* cli/agent.c — `outpost agent`: the workspace agent (agent/agent.h). */
#include "agent/agent.h"
#include "cli/cmd.h"

int op_cmd_agent(int argc, char **argv)
{
    return op_agent_main(argc, argv);
}
