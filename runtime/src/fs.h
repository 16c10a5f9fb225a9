/*
** fs.h - file-system steps the runtime takes for its callers: mkdir -p.
** One rule for every binding (airbyte.core, the cache's sqlite module);
** each words its own message.
*/
#ifndef LB_FS_H
#define LB_FS_H

/* Create the directory path[0..] and its missing parents with mode (minus
** the umask). Returns 0, or the errno of the step that failed, with path
** cut (a NUL written) after the component that failed; on success path is
** as it was. A component that exists but is not a directory fails with
** EEXIST. */
int lb__mkdir_p(char *path, int mode);

#endif
