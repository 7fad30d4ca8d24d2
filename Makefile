# ngx_realtime_module: developer entry points.
#   make            build build/ngx_realtime_module.so (nginx's own build system)
#   make run        build and run the demo on http://127.0.0.1:8080/
#   make test       unit tests (ASan+UBSan) and integration tests against real nginx
#   make unit       unit tests only;  make itest  integration tests only
#   make bench      side-by-side benchmark with nchan (bench/README.md)

NGINX_SRC   ?= /usr/share/nginx/src
BUILD       := $(CURDIR)/build
NGX_BUILD   := $(BUILD)/nginx
MODULE      := $(BUILD)/ngx_realtime_module.so
PYTHON      := /usr/bin/python3
SHELL       := /bin/bash

CORE_SRCS   := $(wildcard src/core/*.cpp)
CORE_HDRS   := $(wildcard src/core/*.h)
NGX_SRCS    := $(wildcard src/ngx/*.cpp) $(wildcard src/ngx/*.h)
UNIT_SRCS   := $(wildcard t/unit/*.cpp)

CXX         ?= g++
UNIT_FLAGS  := -std=c++17 -g -O1 -Wall -Wextra -Werror -fno-omit-frame-pointer \
               -fsanitize=address,undefined -fno-sanitize-recover=all -Isrc

.PHONY: all module deps test-deps unit unit-link itest test run bench clean

all: module

deps:
	@scripts/deps.sh build

test-deps:
	@scripts/deps.sh test

module: deps $(MODULE)

# configure runs once (about 20 s); later builds only recompile what changed.
$(NGX_BUILD)/Makefile: config
	@mkdir -p $(NGX_BUILD)
	cd $(NGINX_SRC) && . ./conf_flags && ./configure \
	    --with-cc-opt="$$(dpkg-buildflags --get CFLAGS) -fPIC $$(dpkg-buildflags --get CPPFLAGS)" \
	    --with-ld-opt="$$(dpkg-buildflags --get LDFLAGS) -fPIC" \
	    "$${NGX_CONF_FLAGS[@]}" \
	    --add-dynamic-module=$(CURDIR) --builddir=$(NGX_BUILD) >$(NGX_BUILD)/configure.log 2>&1 \
	    || { tail -30 $(NGX_BUILD)/configure.log; exit 1; }
	@# our .cpp objects, not nginx's generated C file, get -std=c++17 (see config)
	echo '$(NGX_BUILD)/addon/core/%.o $(NGX_BUILD)/addon/ngx/%.o: CFLAGS += -std=c++17' >> $@

$(MODULE): $(NGX_BUILD)/Makefile $(CORE_SRCS) $(CORE_HDRS) $(NGX_SRCS)
	$(MAKE) -s -f $(NGX_BUILD)/Makefile -C $(NGINX_SRC) modules
	@# a new file, renamed over the old: a running nginx keeps its mapping intact
	cp $(NGX_BUILD)/ngx_realtime_module.so $@.tmp && mv -f $@.tmp $@

# One object per source (in parallel: with ASan each takes a while), then
# one link; -MMD records each object's headers, so an edit rebuilds what
# includes it.
UNIT_OBJS   := $(patsubst %.cpp,$(BUILD)/unit/%.o,$(UNIT_SRCS) $(CORE_SRCS))
JOBS        ?= $(shell nproc 2>/dev/null || echo 2)

$(BUILD)/unit/%.o: %.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(UNIT_FLAGS) -MMD -MP -c -o $@ $<

-include $(UNIT_OBJS:.o=.d)

$(BUILD)/unit_tests: $(CORE_SRCS) $(CORE_HDRS) $(UNIT_SRCS) $(wildcard t/unit/*.h)
	@$(MAKE) --no-print-directory -j$(JOBS) unit-link

unit-link: $(UNIT_OBJS)
	$(CXX) $(UNIT_FLAGS) -o $(BUILD)/unit_tests $(UNIT_OBJS) -lgtest -lgtest_main -lpthread -lcrypto -ljansson

unit: test-deps $(BUILD)/unit_tests
	$(BUILD)/unit_tests --gtest_brief=1

itest: test-deps module
	$(PYTHON) -m pytest -q t/integration

# The one command for everything: its last line is pytest's summary.
test: test-deps module $(BUILD)/unit_tests
	$(BUILD)/unit_tests --gtest_brief=1
	$(PYTHON) -m pytest -q t/integration

run: module
	scripts/run-demo.sh

# Benchmarks against nchan and a floor server (bench/README.md); BENCH_ARGS=--quick for a smoke run.
# The scenarios too long for bench/run's default budget (open-loop latency, 100k connections)
# run after the others with --separate (their tables: build/bench/last-run-separate.md);
# with --quick (their small sizes are in the quick run) or --only, bench/run alone.
bench: module
	@scripts/deps.sh bench
	$(PYTHON) bench/run $(BENCH_ARGS)
	$(if $(findstring --only,$(BENCH_ARGS))$(findstring --quick,$(BENCH_ARGS)),,$(PYTHON) bench/run --separate $(BENCH_ARGS))

clean:
	rm -rf $(BUILD)
