/* templates.h: the kernel templates embedded into bpc at build time (templates/,
 * turned into build/gen/templates.c by templates/embed.awk). */
#ifndef BPC_TEMPLATES_H
#define BPC_TEMPLATES_H

typedef struct { const char *name; const char *text; } bp_template;
/* Every embedded template, in file-name order, ended by an entry whose name is NULL. */
extern const bp_template bp_templates[];

/* The text of templates/NAME, or NULL. */
const char *bp_template_text(const char *name);

#endif
