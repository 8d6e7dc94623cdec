/* plot.h: `bpc plot RUN_DIR... [-o FILE.svg|FILE.png] [--metric M]`: the per-epoch
 * curves of one or more run folders overlaid in one chart (EBP against BrainProp, one
 * seed against another), so that runs can be compared at a glance.
 *
 * Each run's metrics.jsonl (written by `bpc train --out`) is read with cJSON; each run
 * is labelled "MODEL RULE" from its summary.json, else from its checkpoint's metadata,
 * else by its folder name (the seed, then the folder, are added where two labels would
 * be the same). gnuplot draws the chart when it is installed (SVG or PNG); without it
 * bpc writes the SVG itself (PNG then needs gnuplot, and says so). $BPC_GNUPLOT names
 * the gnuplot to use, or "none" for the built-in SVG writer.
 */
#ifndef BPC_PLOT_H
#define BPC_PLOT_H

/* The subcommand: argv holds the arguments after "plot" (argv[0] is the first of
 * them). Returns 0; 1 for an error in the input (a missing run folder, a run without
 * epochs, a bad option); 2 for an unreadable or corrupt metrics file, a failed write,
 * or PNG asked for without gnuplot. Messages go to stderr. */
int bp_cmd_plot(int argc, char **argv);

/* Draws `metric` ("test_acc", "val_acc", "train_acc", "train_loss", "train_reward")
 * of runs[0..n) into `out` (.svg or .png), as bp_cmd_plot does; `title` may be NULL.
 * Returns the exit status as above, after printing the reason to stderr. */
int bp_plot_runs(const char *const *runs, int n, const char *metric, const char *out,
                 const char *title);

#endif
