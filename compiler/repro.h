/* repro.h: `bpc repro`: the paper's experiment grid from one command, and a table like
 * the paper's from it (Pozzi, Bohte & Roelfsema, NeurIPS 2020).
 *
 *   bpc repro --models M1,M2 [--rules brainprop,ebp] [--seeds 1,2,3] --out GRID_DIR
 *             [--data DIR] [--epochs N] [--lr X] [--limit N] [--test-limit N]
 *             [--val N|F|test] [--target cpu|cuda|auto] [--progress|--no-progress]
 *
 * Each (model, rule, seed) is one run folder, GRID_DIR/MODEL-RULE-seedS, trained by
 * bp_train as `bpc train --out` would. A cell with a summary.json that reached the
 * asked epochs (or stopped early) is done and skipped; one with a last.safetensors and
 * no finished summary is resumed; so the same command, run again, continues a grid
 * over several sittings. At the end GRID_DIR/results.md holds, per (model, rule), the
 * test accuracy mean (std) over the seeds, the epochs to the best validation accuracy
 * mean (std) and the seconds per epoch, each run, a plot per model, the machine, the
 * date and the exact command. A model is a .bp path, or a name looked up as
 * models/NAME.bp (in the current folder, then beside bpc's own folder).
 */
#ifndef BPC_REPRO_H
#define BPC_REPRO_H

/* The subcommand: argv holds the arguments after "repro" (argv[0] is the first of
 * them). Returns 0; 1 for an error in the input (options, a model, a cell trained with
 * other options); 2 when a run failed (I/O, target, NaN loss; the other cells still
 * run); 130/143 when interrupted (run the same command again to continue). */
int bp_cmd_repro(int argc, char **argv);

#endif
