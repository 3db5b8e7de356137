# bench/bench.mk — included by the top Makefile: the benchmark harness's own tools.
#   make bench-tools   build $(B)/bench/loadgen (load generator + upstream, see bench/loadgen.c) and
#                      $(B)/bench/agentd (the agent's SSH server on a port, for the direct SSH row),
#                      $(B)/bench/termload (web-terminal load: keystroke echo latency, idle terminals)
# The generator is a bench tool, not product code: its TLS client is Debian's OpenSSL (libssl-dev),
# see bench/README.md for why.
BENCH_LOADGEN := $(B)/bench/loadgen
BENCH_AGENTD := $(B)/bench/agentd
BENCH_TERMLOAD := $(B)/bench/termload
BENCH_MINRELAY := $(B)/bench/minrelay

.PHONY: bench-tools
bench-tools: $(BENCH_LOADGEN) $(BENCH_AGENTD) $(BENCH_TERMLOAD) $(BENCH_MINRELAY)

$(BENCH_MINRELAY): $(B)/bench/minrelay.o
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^

$(BENCH_TERMLOAD): $(B)/bench/termload.o
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^

$(BENCH_AGENTD): $(B)/bench/agentd.o $(LIB)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BENCH_LOADGEN): $(B)/bench/loadgen.o
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ -lssl -lcrypto
