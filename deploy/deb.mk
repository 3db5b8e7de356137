# deploy/deb.mk — packaging targets, included by the Makefile.
#   make deb             build/outpost_<version>_amd64.deb from the release binary (scripts/mkdeb.sh),
#                        checked with lintian when it is installed (an error fails the build)
#   make test-deploy     the packaging tests (tests/integration/deploy_*.sh) against the release binary
.PHONY: deb test-deploy

deb: $(BUILD_ROOT)/rel/outpost
	$(Q)deb=$$(bash scripts/mkdeb.sh $(BUILD_ROOT)/rel/outpost $(BUILD_ROOT)) && echo "  DEB     $$deb" && \
	  if command -v lintian >/dev/null; then lintian --fail-on error "$$deb"; \
	  else echo "  (lintian not installed: apt-get install lintian)"; fi

test-deploy: $(BUILD_ROOT)/rel/outpost
	$(Q)OUTPOST_BIN=$(abspath $(BUILD_ROOT)/rel/outpost) BUILD_DIR=$(abspath $(BUILD_ROOT)/rel) \
	  tests/run.sh integration deploy_

ifneq ($(VARIANT),rel)
# From a sanitizer or debug make invocation, the package still takes the release binary.
$(BUILD_ROOT)/rel/outpost: FORCE_REL
	$(Q)$(MAKE) --no-print-directory SAN= DEBUG= $(BUILD_ROOT)/rel/outpost
.PHONY: FORCE_REL
endif

# make test-container: the proxy image built with podman on a mmdebstrap root, run against a primary
# on the host (tests/deploy/container.sh). Slow the first time (the Debian root is made then cached).
.PHONY: test-container
test-container: deb
	$(Q)OUTPOST_BIN=$(abspath $(BUILD_ROOT)/rel/outpost) BUILD_DIR=$(abspath $(BUILD_ROOT)/rel) \
	  timeout --kill-after=10 600 bash tests/deploy/container.sh
