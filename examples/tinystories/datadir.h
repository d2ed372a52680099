/* Where the installed program finds its model and tokenizer. */
#ifndef TS_DATADIR_H
#define TS_DATADIR_H

/* The data directory: the one installed beside this executable (its directory joined with
 * the configured bin-to-data relative path) when that holds stories260K.bin, else the
 * directory compiled in at configure time. `cmake --install --prefix X` may put the program
 * somewhere other than the configured prefix, so the run-time location comes first. The
 * result is a static string, computed once; never NULL. */
const char *ts_data_dir(void);

/* Room for a path under the data directory. */
enum { TS_PATH_MAX = 4096 };

/* Writes <ts_data_dir()>/<name> into buf (TS_PATH_MAX bytes) and returns buf. */
const char *ts_data_file(char *buf, const char *name);

#endif
