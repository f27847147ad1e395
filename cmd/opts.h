/* opts.h - table-driven option parsing and the exit-status conventions shared by every command
 * (outputs.md, "Command line").
 *
 * A command declares a table of struct ab_opt {long name, kind, pointer, help}; ab_opts_parse
 * fills the pointers, collects positional arguments, handles --help and the common options
 * (--seed, --threads, --quiet, --verbose, --progress/--no-progress), and reports unknown or
 * malformed options as usage errors. */
#ifndef AB_CMD_OPTS_H
#define AB_CMD_OPTS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/* exit statuses (outputs.md); never 77 or 99 */
enum {
    EX_AB_OK = 0,
    EX_AB_REGRESSION = 1,
    EX_AB_USAGE = 64,
    EX_AB_DATA = 65,
    EX_AB_NOINPUT = 66,
    EX_AB_NOTOOL = 69,
    EX_AB_SOFTWARE = 70,
    EX_AB_CANTCREAT = 73,
    EX_AB_IOERR = 74,
    EX_AB_INTERRUPTED = 130,
};

enum ab_opt_kind {
    AB_OPT_FLAG,   /* int*: set to 1 */
    AB_OPT_INT,    /* int64_t* */
    AB_OPT_DOUBLE, /* double* */
    AB_OPT_STRING, /* const char** */
    AB_OPT_MANY,   /* struct ab_opt_many*: the option may repeat; each value is kept */
    AB_OPT_END
};

struct ab_opt {
    const char *name; /* long name without dashes; "o" is also accepted as -o */
    int kind;
    void *ptr;
    const char *arg;  /* placeholder in help ("N"), NULL for flags */
    const char *help;
};

/* The values of a repeatable option (AB_OPT_MANY), in the order given. */
struct ab_opt_many {
    const char *v[64];
    int n;
};

/* Options every command accepts. */
struct ab_common {
    uint64_t seed;
    int64_t threads;
    int quiet, verbose;
    int progress; /* enum ab_progress_mode; -1 auto until ab_opts_parse resolves it */
    int nested;   /* a command run as a scenario step: under --quiet ab_out_main prints nothing */
};

/* How progress is shown on stderr: not at all (--no-progress, --quiet), as a bar redrawn in
 * place with \r (a terminal, or --progress), or as plain complete lines (a log file, CI). */
enum ab_progress_mode { AB_PROGRESS_OFF = 0, AB_PROGRESS_BAR = 1, AB_PROGRESS_LINES = 2 };
extern struct ab_common ab_common;

/* Parses argv[1..argc) of command `cmd` against table (terminated by {NULL, AB_OPT_END}).
 * Positional arguments are stored in pos[0..*n_pos) (at most max_pos). Returns -1 when parsing
 * succeeded and the command should go on; otherwise an exit status to return at once (0 after
 * --help, 64 after a usage error, with the message printed). usage is the synopsis line(s). */
int ab_opts_parse(const char *cmd, const char *usage, const struct ab_opt *table, int argc,
                  char **argv, char **pos, int max_pos, int *n_pos);

/* Prints the command's usage and option table to stdout. */
void ab_opts_help(const char *cmd, const char *usage, const struct ab_opt *table);

/* The same for a command declared with a table (core/decl.h): each option is parsed into its
 * field of o with ab_decl_set (o holds its defaults: ab_decl_defaults first); a bad value is
 * "error: CMD: option '--rows' wants an integer in [1, 2147483647], got 'x'" and 64; --help
 * shows each row's default. An unknown option gets a did-you-mean in either parser. */
struct ab_decl;
int ab_opts_parse_decl(const char *cmd, const char *usage, const struct ab_decl *decl, void *o,
                       int argc, char **argv, char **pos, int max_pos, int *n_pos);
void ab_opts_help_decl(const char *cmd, const char *usage, const struct ab_decl *decl);

/* Prints "error: <detail>" to stderr (detail = ab_errmsg() or the code's text) and returns the
 * exit status for library status code `code`. */
int ab_cmd_fail(int code);

/* Prints "error: ..." (printf format) to stderr and returns status. */
int ab_cmd_error(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Maps a library status code to an exit status. */
int ab_exit_status(int code);

/* --methods of a command: the named registry rows (comma list), each checked to exist and to
 * have one of the phases (and, with causal, the causal mask); list NULL means every row with
 * one of the phases (and the mask). Returns -1 on success, else the exit status after printing
 * the error. */
struct ab_method;
int ab_opts_methods(const char *cmd, const char *list, unsigned phases, int causal,
                    const struct ab_method **out, int cap, int *n);

/* --budgets: a comma list of target FLOP ratios in (0, 1], at most cap. Returns -1 on success,
 * else the exit status after printing the error. */
int ab_opts_budgets(const char *cmd, const char *list, double *out, int cap, int *n);

/* Progress of one long command on stderr, in the mode of ab_common.progress. A bar is redrawn
 * at most every 0.1 s. Lines ("run: 40% (1234/3085 cells), 2m10s elapsed, about 3m15s left",
 * the time left estimated from the rate so far) come at every tenth of the work, none in the
 * first AB_PROGRESS_QUIET_S seconds, always one at 100%, and, from a ticker thread, one whenever
 * AB_PROGRESS_LINE_S seconds pass without a line, even when no step comes (a long head, a
 * model-level fit). label and unit ("cells") are not copied; p must stay where it is until
 * ab_progress_end or ab_progress_stop, one of which every started progress must reach. done is
 * written by the calling thread only (through ab_progress_step). */
enum { AB_PROGRESS_LINE_S = 60, AB_PROGRESS_QUIET_S = 5 };
struct ab_progress {
    const char *label, *unit;
    int64_t total, done;
    double t0, last;
    int mode;
    int tenth;         /* lines: the last tenth of the work a line was printed for */
    int64_t line_done; /* lines: done at the last line printed (-1: none yet) */
    int drawn;         /* bar: characters on the terminal line now (0: none) */
    /* lines: the ticker thread and what it shares with the caller (under lock) */
    pthread_t ticker;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int ticking, stopping;
    int64_t base;      /* ab_progress_engine: work of the parts before the current one */
    int64_t skipped;   /* work done before this process (run --resume): counted as done, left
                          out of the rate that estimates the time left */
    /* optional: the estimated work behind the count (run: the heads' cost, shard.h), set under
       lock with ab_progress_work; when work_total > 0 the time left is carried over the work
       (heads of 128K tokens cost far more per cell than heads of 2K), else over the count */
    double work_done, work_total, work_skipped;
};
void ab_progress_start(struct ab_progress *p, const char *label, const char *unit, int64_t total);
void ab_progress_step(struct ab_progress *p, int64_t n);
/* The estimated work done and in all (see work_total); the first call's done is the work done
 * before this process (resumed), left out of the rate like skipped. */
void ab_progress_work(struct ab_progress *p, double done, double total);
/* The progress callback of the engines (ab_sweep_opts, ab_heads_opts): user is a started
 * struct ab_progress, done counts the work of the current part (one workload) and p->base the
 * work of the parts before it; set p->base = p->done before each part. */
void ab_progress_engine(void *user, int64_t done, int64_t total);
/* The same for an engine that reports work done over all its parts and the total, known
 * once it has started (ab_run): the total is taken from the call. */
void ab_progress_engine_total(void *user, int64_t done, int64_t total);
/* Erases the bar so a line can go to stdout; the next step redraws it. */
void ab_progress_pause(struct ab_progress *p);
/* Success: the bar at 100% and a newline; lines: the 100% line when not printed yet. */
void ab_progress_end(struct ab_progress *p);
/* Failure: erases the bar (the error goes on a clean line); lines: nothing more. */
void ab_progress_stop(struct ab_progress *p);

/* The last component of path (after its last '/'). */
const char *ab_path_base(const char *path);

/* "42s", "2m10s", "1h05m". */
void ab_fmt_duration(char *buf, size_t cap, double seconds);

/* The output contract of every command that writes files (README, "Output"): without
 * --verbose and --quiet, one line "COMMAND: MAIN (detail)" on stdout; --verbose also lists
 * every path written, one per line, before it; --quiet prints the bare main path only. Call
 * ab_out_file for each file written (it prints it under --verbose) and ab_out_main once, at the
 * end; detail may be NULL. */
void ab_out_file(const char *path);
void ab_out_main(const char *cmd, const char *main_path, const char *detail_fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* command entry points: argc/argv start at the command name; return the exit status */
int cmd_gen(int argc, char **argv);
struct ab_gen_run_opts;
int cmd_gen_opts(const struct ab_gen_run_opts *o); /* `gen` from its options (scenario) */
int cmd_capture(int argc, char **argv);
struct ab_capture_run_opts;
int cmd_capture_opts(const struct ab_capture_run_opts *o); /* from its options (scenario) */
int cmd_eval_model(int argc, char **argv);
struct ab_eval_run_opts;
int cmd_eval_model_opts(const struct ab_eval_run_opts *o); /* from its options (scenario) */
int cmd_info(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_ingest(int argc, char **argv);
struct ab_import_run_opts;
int cmd_import_opts(const struct ab_import_run_opts *o); /* from its options (scenario) */
int cmd_render(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_selftest(int argc, char **argv);
int cmd_bench_methods(int argc, char **argv); /* `bench methods` (bench_methods.c) */
/* Seeded Gaussian rows x (n, d) of stream `tag` under --seed: the benchmarks' inputs (bench.c). */
void ab_bench_fill(float *x, int64_t n, int64_t d, uint64_t tag);
int cmd_methods(int argc, char **argv);
int cmd_run(int argc, char **argv);
/* `run` from its options (cmd/run.c): the scenario runner's entry, the same as the command
 * line's after parsing. Returns the exit status. */
struct ab_run_opts;
int cmd_run_opts(const struct ab_run_opts *o);
int cmd_merge(int argc, char **argv); /* merge.c: the pieces of `run --shard` into one file */
int cmd_report(int argc, char **argv);
struct ab_report_run_opts;
int cmd_report_opts(const struct ab_report_run_opts *o); /* `report` from its options (scenario) */
int cmd_scenario(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_heads(int argc, char **argv);
struct ab_heads_run_opts;
int cmd_heads_opts(const struct ab_heads_run_opts *o); /* `heads` from its options (scenario) */
int cmd_convert(int argc, char **argv);

#endif
