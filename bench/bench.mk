# bench/bench.mk — included by the top Makefile: the benchmark harness's own tools.
#   make bench-tools   build $(B)/bench/loadgen (load generator + upstream, see bench/loadgen.c) and
#                      $(B)/bench/agent_sshd (the agent's SSH server on a port, for the direct SSH row)
# The generator is a bench tool, not product code: its TLS client is Debian's OpenSSL (libssl-dev),
# see bench/README.md for why.
BENCH_LOADGEN := $(B)/bench/loadgen
BENCH_SSHD := $(B)/bench/agent_sshd

.PHONY: bench-tools
bench-tools: $(BENCH_LOADGEN) $(BENCH_SSHD)

$(BENCH_SSHD): $(B)/bench/agent_sshd.o $(LIB)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BENCH_LOADGEN): $(B)/bench/loadgen.o
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ -lssl -lcrypto
