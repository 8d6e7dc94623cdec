# bpc: the BrainProp model compiler.  `make` builds build/bpc; `make demo` trains
# models/mnist_conv.bp on the real MNIST; `make test` runs every test.
#
# Pipeline, one folder a stage: grammar/ (flex, bison) -> compiler/ (checks, IR,
# codegen) -> templates/ (kernel code, embedded into bpc) -> runtime/ (JIT, plan
# executor, data, training loop).

CC       ?= cc
BUILD    ?= build
CUDA_HOME ?= /usr/local/cuda
CFLAGS   ?= -O2 -g
CFLAGS   += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -MMD -MP
CPPFLAGS += -Icompiler -Iruntime -Itemplates -I$(BUILD)/gen
LDLIBS   += -lm -ldl

# ---- detect what is there, and say so ------------------------------------------------
have = $(if $(1),✓,✗)
# OpenBLAS: the OpenMP build where it is installed (Debian libopenblas-openmp-dev), so
# that its threads and the kernels' OpenMP loops share one thread pool.
OPENBLAS_PC     := $(firstword $(wildcard /usr/lib/*/openblas-openmp/pkgconfig))
OPENBLAS_CFLAGS := $(shell PKG_CONFIG_PATH=$(OPENBLAS_PC) pkg-config --cflags openblas 2>/dev/null)
OPENBLAS_LIBS   := $(shell PKG_CONFIG_PATH=$(OPENBLAS_PC) pkg-config --libs openblas 2>/dev/null)
OPENBLAS_DIR    := $(shell PKG_CONFIG_PATH=$(OPENBLAS_PC) pkg-config --variable=libdir openblas 2>/dev/null)
OPENBLAS_KIND   := $(if $(OPENBLAS_PC),OpenMP,pthreads)
ifeq ($(OPENBLAS_LIBS),)
$(error OpenBLAS not found: install libopenblas-dev (Debian) so that pkg-config finds openblas)
endif
CPPFLAGS += $(OPENBLAS_CFLAGS)
LDLIBS   += $(OPENBLAS_LIBS) -Wl,-rpath,$(OPENBLAS_DIR)
OPENMP := $(shell echo 'int main(void){return 0;}' | $(CC) -fopenmp -x c - -o /dev/null 2>/dev/null && echo yes)
ifeq ($(OPENMP),yes)
CFLAGS += -fopenmp
endif
ZLIB_LIBS   := $(shell pkg-config --libs zlib 2>/dev/null)
CRYPTO_LIBS := $(shell pkg-config --libs libcrypto 2>/dev/null)
ARCHIVE_LIBS := $(shell pkg-config --libs libarchive 2>/dev/null)
CJSON_LIBS   := $(shell pkg-config --libs libcjson 2>/dev/null)
CPPFLAGS += $(shell pkg-config --cflags libcjson 2>/dev/null)
# libjpeg-turbo (Debian libjpeg62-turbo-dev): decodes Tiny ImageNet's JPEGs.
JPEG_LIBS    := $(shell pkg-config --libs libjpeg 2>/dev/null)
LDLIBS += $(ZLIB_LIBS) $(CRYPTO_LIBS) $(ARCHIVE_LIBS) $(CJSON_LIBS) $(JPEG_LIBS)
# CUDA: only its headers are needed to build; libcuda, NVRTC and cuBLAS are loaded with
# dlopen when the CUDA target is asked for, so bpc builds and runs without them.
CUDA := $(shell test -f $(CUDA_HOME)/include/nvrtc.h && test -f $(CUDA_HOME)/include/cublas_v2.h && echo yes)
ifeq ($(CUDA),yes)
CPPFLAGS += -DBPC_HAVE_CUDA -I$(CUDA_HOME)/include
endif
# NCCL (data parallelism on GPUs) is used when the toolkit's folder has nccl.h
# (runtime/cuda_api.h looks with __has_include); reported here
NCCL := $(shell test "$(CUDA)" = yes && test -f $(CUDA_HOME)/include/nccl.h && echo yes)
CMOCKA_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null)
# OpenMPI (Debian libopenmpi-dev): data parallelism under mpirun (runtime/dist.h).
MPI_LIBS := $(shell pkg-config --libs ompi-c 2>/dev/null)
ifneq ($(MPI_LIBS),)
CPPFLAGS += -DBPC_HAVE_MPI $(shell pkg-config --cflags ompi-c 2>/dev/null)
LDLIBS   += $(MPI_LIBS) -lpthread
endif

$(info bpc build: OpenBLAS ($(OPENBLAS_KIND)) ✓  OpenMP $(call have,$(OPENMP))  CUDA headers ($(CUDA_HOME)) $(call have,$(CUDA))  zlib $(call have,$(ZLIB_LIBS))  libcrypto $(call have,$(CRYPTO_LIBS))  libarchive $(call have,$(ARCHIVE_LIBS))  libjpeg $(call have,$(JPEG_LIBS))  cJSON $(call have,$(CJSON_LIBS))  cmocka $(call have,$(CMOCKA_LIBS))  MPI $(call have,$(MPI_LIBS))  NCCL $(call have,$(NCCL)))

# ---- sources --------------------------------------------------------------------------
GEN      := $(BUILD)/gen
PARSER   := $(GEN)/parser.c $(GEN)/parser.h
LEXER    := $(GEN)/lexer.c $(GEN)/lexer.h
TEMPLATES := $(sort $(wildcard templates/*.h templates/*.in))
LIB_SRC  := $(filter-out compiler/main.c compiler/fuzz_frontend.c,$(wildcard compiler/*.c)) \
            $(wildcard runtime/*.c)
GEN_SRC  := $(GEN)/parser.c $(GEN)/lexer.c $(GEN)/templates.c

define objs
$(patsubst %.c,$(1)/%.o,$(LIB_SRC)) $(patsubst $(GEN)/%.c,$(1)/gen/%.o,$(GEN_SRC))
endef

all: $(BUILD)/bpc $(BUILD)/libbprt.a

$(GEN)/parser.c $(GEN)/parser.h &: grammar/bp.y
	@mkdir -p $(GEN)
	bison -Wall -Werror --defines=$(GEN)/parser.h -o $(GEN)/parser.c $<

$(GEN)/lexer.c $(GEN)/lexer.h &: grammar/bp.l $(GEN)/parser.h
	@mkdir -p $(GEN)
	flex --header-file=$(GEN)/lexer.h -o $(GEN)/lexer.c $<

$(GEN)/templates.c: $(TEMPLATES) templates/embed.awk
	@mkdir -p $(GEN)
	awk -f templates/embed.awk $(TEMPLATES) > $@.tmp && mv $@.tmp $@

# Every object needs the generated headers first.
$(BUILD)/%.o: %.c | $(PARSER) $(LEXER)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/gen/%.o: $(GEN)/%.c | $(PARSER) $(LEXER)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -Wno-sign-compare -Wno-unused-function -c $< -o $@

$(BUILD)/bpc: $(BUILD)/compiler/main.o $(call objs,$(BUILD))
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

# ---- standalone trainers: `bpc build` links a trainer against libbprt.a (the runtime and
# the compiler, every object of bpc but main), found next to bpc (or ../lib/bpc/, or
# $$BPC_LIB), with the link flags recorded in bprt_link.h. Install both together.
$(BUILD)/libbprt.a: $(call objs,$(BUILD))
	rm -f $@.tmp && ar rcs $@.tmp $^ && mv $@.tmp $@
$(GEN)/bprt_link.h: Makefile
	@mkdir -p $(GEN)
	printf '/* generated by the Makefile: how bpc build links a trainer */\n#define BPC_LINK_FLAGS "%s"\n#define BPC_LINK_LIBS "%s"\n' \
	  '$(if $(filter yes,$(OPENMP)),-fopenmp)' '$(LDLIBS)' > $@.tmp && mv $@.tmp $@
$(BUILD)/compiler/build.o $(SAN)/compiler/build.o: $(GEN)/bprt_link.h

# ---- sanitizer build: the same sources, ASan + UBSan ----------------------------------
SAN      := $(BUILD)/san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
$(SAN)/%.o: %.c | $(PARSER) $(LEXER)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -O1 $(SANFLAGS) -c $< -o $@
$(SAN)/gen/%.o: $(GEN)/%.c | $(PARSER) $(LEXER)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -O1 $(SANFLAGS) -Wno-sign-compare -Wno-unused-function -c $< -o $@
$(SAN)/bpc: $(SAN)/compiler/main.o $(call objs,$(SAN))
	$(CC) $(CFLAGS) $(SANFLAGS) $^ -o $@ $(LDLIBS)

# ---- unit tests: tests/unit/test_*.c, each one cmocka program -------------------------
# a one-step compile and link: the sources and objects of $^ (the .d files add headers)
SRCS = $(filter %.c %.o,$^)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT     := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
UNIT_SAN := $(patsubst tests/unit/%.c,$(SAN)/tests/%,$(UNIT_SRC))
$(BUILD)/tests/%: tests/unit/%.c $(call objs,$(BUILD))
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -Itests/unit $(SRCS) -o $@ $(LDLIBS) $(CMOCKA_LIBS)
$(SAN)/tests/%: tests/unit/%.c $(call objs,$(SAN))
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -O1 $(SANFLAGS) -Itests/unit $(SRCS) -o $@ $(LDLIBS) $(CMOCKA_LIBS)

# ---- the PyTorch oracle's dumper: one training step, every tensor before and after ----
$(BUILD)/oracle_dump: tests/oracle/dump.c $(call objs,$(BUILD))
	$(CC) $(CPPFLAGS) $(CFLAGS) $(SRCS) -o $@ $(LDLIBS)

# ---- the GPU check: CUDA against CPU, step by step (needs a GPU to run; links anywhere)
$(BUILD)/gpu_compare: tests/gpu/compare.c tests/sync_check.h $(call objs,$(BUILD))
	$(CC) $(CPPFLAGS) $(CFLAGS) -Itests $(SRCS) -o $@ $(LDLIBS)

# ---- data parallelism against one process, step by step (run it under mpirun) -------
$(BUILD)/mpi_compare: tests/mpi/compare.c tests/sync_check.h $(call objs,$(BUILD))
	$(CC) $(CPPFLAGS) $(CFLAGS) -Itests $(SRCS) -o $@ $(LDLIBS)

# ---- fuzzing: libFuzzer on the .bp front end (clang) ----------------------------------
# the front end alone: lexer, parser, checks, IR, the check table
FUZZ_SRC := $(addprefix compiler/,ast.c args.c check.c check_train.c diag.c frontend.c ir.c \
              report.c suggest.c) $(GEN)/parser.c $(GEN)/lexer.c
$(BUILD)/fuzz_frontend: compiler/fuzz_frontend.c $(FUZZ_SRC) | $(PARSER) $(LEXER)
	clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined $(CPPFLAGS) $^ -o $@ -lm
# the data readers: one libFuzzer target per binary parser (IDX, CIFAR, the JPEG cache)
DATA_SRC  := runtime/err.c runtime/idx.c runtime/mnist.c runtime/fetch.c runtime/cifar.c \
             runtime/tinyimagenet.c runtime/dataset.c runtime/data_cmd.c runtime/jit_c.c \
             runtime/files.c
DATA_FUZZ := $(patsubst tests/fuzz/%.c,$(BUILD)/%,$(wildcard tests/fuzz/fuzz_*.c))
$(DATA_FUZZ): $(BUILD)/%: tests/fuzz/%.c tests/fuzz/fuzz_input.h $(DATA_SRC) runtime/data.h runtime/data_priv.h
	@mkdir -p $(dir $@)
	clang -std=c11 -D_GNU_SOURCE -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION -g -O1 \
	  -fsanitize=fuzzer,address,undefined -Iruntime $(filter %.c,$^) -o $@ \
	  $(ZLIB_LIBS) $(CRYPTO_LIBS) $(ARCHIVE_LIBS) $(JPEG_LIBS) -ldl -lm

# `make fuzz FUZZ_SECONDS=3600` for a long run of every target
fuzz: $(BUILD)/fuzz_frontend $(DATA_FUZZ)
	@mkdir -p $(BUILD)/fuzz-corpus && cp models/*.bp tests/golden/*.bp $(BUILD)/fuzz-corpus/ 2>/dev/null; \
	$(BUILD)/fuzz_frontend -max_total_time=$${FUZZ_SECONDS:-60} -print_final_stats=1 $(BUILD)/fuzz-corpus
	@for t in $(DATA_FUZZ); do f=$${t##*/fuzz_}; mkdir -p $(BUILD)/fuzz-corpus-$$f && cp tests/fuzz/seeds/$$f/* $(BUILD)/fuzz-corpus-$$f/ && $$t -max_total_time=$${FUZZ_SECONDS:-60} -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 $(BUILD)/fuzz-corpus-$$f || exit 1; done

# ---- CUDA without a GPU: every model through NVRTC to PTX, ptxas for sm_90 -----------
cuda-report: $(BUILD)/bpc
	BPC=$(BUILD)/bpc CUDA_HOME=$(CUDA_HOME) sh tests/cuda_compile.sh

# ---- make bench: bpc's CPU step against PyTorch, interleaved; writes bench/results.json
$(BUILD)/bench_step: bench/bench_step.c $(call objs,$(BUILD))
	$(CC) $(CPPFLAGS) $(CFLAGS) $(SRCS) -o $@ $(LDLIBS)
bench: $(BUILD)/bench_step $(BUILD)/bpc
	BUILD=$(BUILD) sh bench/run.sh

# ---- reliability: SIGKILL at 50 random moments + resume = uninterrupted (tests/torture.py);
# the unit tests under valgrind's memcheck (the plain build: ASan and valgrind exclude
# each other)
torture: $(BUILD)/bpc
	/usr/bin/python3 tests/torture.py --bpc $(BUILD)/bpc --kills $${KILLS:-50}
valgrind: $(UNIT)
	BUILD=$(BUILD) sh tests/valgrind.sh

# ---- the two set-up commands ------------------------------------------------------------
DATA ?= $(or $(BPC_DATA),$(HOME)/.cache/bpc/data)
demo: $(BUILD)/bpc
	$(BUILD)/bpc data fetch mnist --data $(DATA)
	$(BUILD)/bpc train models/mnist_conv.bp --data $(DATA) --target cpu --epochs 3

test: $(BUILD)/bpc $(BUILD)/libbprt.a $(SAN)/bpc $(UNIT) $(UNIT_SAN) $(BUILD)/fuzz_frontend $(DATA_FUZZ) $(BUILD)/oracle_dump $(BUILD)/gpu_compare $(BUILD)/mpi_compare $(BUILD)/bench_step
	BUILD=$(BUILD) DATA=$(DATA) sh tests/run.sh

# ---- make install [PREFIX=/usr/local] [DESTDIR=...]; make uninstall -------------------
# bpc finds libbprt.a in ../lib/bpc/ and the shipped models in ../share/bpc/models/ from
# its own folder, so the tree may be moved as a whole (DESTDIR staging included).
PREFIX ?= /usr/local
INSTALL_FILES := bin/bpc lib/bpc/libbprt.a share/man/man1/bpc.1 \
  $(patsubst %,share/bpc/%,$(wildcard models/*.bp) $(TEMPLATES)) \
  share/bpc/editors/bp.tmLanguage.json share/vim/vimfiles/syntax/bp.vim \
  share/vim/vimfiles/ftdetect/bp.vim
install: $(BUILD)/bpc $(BUILD)/libbprt.a
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/bpc $(DESTDIR)$(PREFIX)/share/man/man1 \
	  $(DESTDIR)$(PREFIX)/share/bpc/models $(DESTDIR)$(PREFIX)/share/bpc/templates \
	  $(DESTDIR)$(PREFIX)/share/bpc/editors $(DESTDIR)$(PREFIX)/share/vim/vimfiles/syntax \
	  $(DESTDIR)$(PREFIX)/share/vim/vimfiles/ftdetect
	install -m 755 $(BUILD)/bpc $(DESTDIR)$(PREFIX)/bin/bpc
	install -m 644 $(BUILD)/libbprt.a $(DESTDIR)$(PREFIX)/lib/bpc/libbprt.a
	install -m 644 docs/bpc.1 $(DESTDIR)$(PREFIX)/share/man/man1/bpc.1
	install -m 644 models/*.bp $(DESTDIR)$(PREFIX)/share/bpc/models/
	install -m 644 $(TEMPLATES) $(DESTDIR)$(PREFIX)/share/bpc/templates/
	install -m 644 editors/bp.tmLanguage.json $(DESTDIR)$(PREFIX)/share/bpc/editors/
	install -m 644 editors/vim/syntax/bp.vim $(DESTDIR)$(PREFIX)/share/vim/vimfiles/syntax/bp.vim
	install -m 644 editors/vim/ftdetect/bp.vim $(DESTDIR)$(PREFIX)/share/vim/vimfiles/ftdetect/bp.vim
uninstall:
	rm -f $(addprefix $(DESTDIR)$(PREFIX)/,$(INSTALL_FILES))
	-rmdir $(DESTDIR)$(PREFIX)/share/bpc/models $(DESTDIR)$(PREFIX)/share/bpc/templates \
	  $(DESTDIR)$(PREFIX)/share/bpc/editors $(DESTDIR)$(PREFIX)/share/bpc $(DESTDIR)$(PREFIX)/lib/bpc 2>/dev/null

clean:
	rm -rf $(BUILD)

.PHONY: all demo test fuzz clean cuda-report bench install uninstall torture valgrind
.SUFFIXES:
.SECONDARY:
-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
