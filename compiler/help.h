/* help.h: `bpc help [VERB]`: what a verb does and every option it takes, on stdout. */
#ifndef BPC_HELP_H
#define BPC_HELP_H

/* Prints the page of verb (emit, check, ptx, train, eval, data, build, plot, repro,
 * help), or, for verb NULL, usage followed by a pointer to the pages. Returns the exit
 * status: 0, or 1 for an unknown verb (stderr lists the verbs). */
int bp_cmd_help(const char *verb, const char *usage);

#endif
