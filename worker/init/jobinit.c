/*
 * jobinit: PID 1 of every jobworker job. It runs the job's program as its child, forwards
 * signals to it, reaps every zombie of the job, and reports how the program ended.
 *
 * Usage (by worker/sandbox.py only): execve(jobinit, ["jobinit", PROGRAM, ARG...], ENV)
 * with fd 3 the spawner's report pipe, fds 0-2 the program's stdio, all signals unblocked,
 * the job's credentials, no_new_privs and PR_SET_DEATHSIG already set.
 *
 * Why an init: the kernel gives a PID namespace's init special signal rules
 * (pid_namespaces(7)): it gets only the signals it has a handler for, so a program run as
 * PID 1 ignores SIGTERM, cannot kill itself with a signal, and turns abort() into SIGSEGV
 * (glibc's abort() falls back to a fault when SIGABRT does nothing). Orphans are reparented
 * to PID 1, so a program that does not reap them collects zombies against its pids limit.
 *
 * Reports, one record per write(2) of less than PIPE_BUF bytes (atomic, pipe(7)), in the
 * format of worker/spawn_protocol.py:
 *   {"type":"exec"}                 the program runs (its exec-error pipe reached EOF)
 *   {"type":"exec_failed","errno":N}  execve failed; jobinit exits 127
 *   {"type":"error","step":S,"errno":N,"detail":D}  jobinit's own setup failed
 *   {"type":"exit","status":N}      the program's wait status from wait4(2), exact: a signal
 *                                   and the core dump flag cannot be confused with an exit
 *                                   code of 128+N
 *
 * Signals: every signal is blocked and taken with sigwaitinfo(2), so none is lost and none
 * acts on jobinit itself (a blocked signal is queued even for a namespace init; only
 * SIGKILL and SIGSTOP from an ancestor namespace act directly). SIGCHLD reaps; a SIGRTMAX
 * queued with sigqueue(3) (SI_QUEUE) asks jobinit to send the signal in its value to the
 * program, which is how the spawner delivers any signal, SIGSTOP included, to the program
 * alone; every other signal is forwarded to the program as it is.
 *
 * jobinit makes itself non-dumpable first (prctl(2), PR_SET_DUMPABLE), so that the job,
 * which runs as the same user, can neither ptrace it nor open its fds through /proc, and so
 * cannot forge its report. It holds no fd but the report pipe, which is close-on-exec.
 */
#include <asm/unistd.h>
#include <linux/fcntl.h>
#include <linux/prctl.h>
#include <linux/signal.h>
#include <linux/wait.h>

#include "syscalls.h"

enum {
  REPORT_FD = 3,
  SETUP_FAILED = 127,
  CONTROL_SIGNAL = 64, /* SIGRTMAX: the kernel's _NSIG. */
  PATH_MAX_BYTES = 4096,
};

static const unsigned long ALL_SIGNALS = ~0UL;
static const unsigned long NO_SIGNALS = 0UL;

/* Appends the decimal form of value to out; returns the new end. */
static char *put_long(char *out, long value) {
  char digits[24];
  int count = 0;
  unsigned long magnitude = value < 0 ? -(unsigned long)value : (unsigned long)value;
  if (value < 0) *out++ = '-';
  do {
    digits[count++] = (char)('0' + magnitude % 10);
    magnitude /= 10;
  } while (magnitude != 0);
  while (count > 0) *out++ = digits[--count];
  return out;
}

static char *put_text(char *out, const char *text) {
  while (*text != '\0') *out++ = *text++;
  return out;
}

/* Writes {"type":"<type>"[,"<key>":<value>]}; ignores failure: a spawner that cannot read
 * its report is gone, and this process dies with it (PDEATHSIG). */
static void report(const char *type, const char *key, long value) {
  char record[128];
  char *end = put_text(put_text(put_text(record, "{\"type\":\""), type), "\"");
  if (key != 0) end = put_long(put_text(put_text(put_text(end, ",\""), key), "\":"), value);
  end = put_text(end, "}\n");
  sys_write(REPORT_FD, record, (unsigned long)(end - record));
}

/* Reports a failed setup step; detail is a fixed ASCII text, so it needs no escaping. */
static __attribute__((noreturn)) void fail(const char *step, long error, const char *detail) {
  char record[256];
  char *end = put_text(put_text(put_text(record, "{\"type\":\"error\",\"step\":\""), step), "\"");
  end = put_long(put_text(end, ",\"errno\":"), -error);
  end = put_text(put_text(put_text(end, ",\"detail\":\""), detail), "\"}\n");
  sys_write(REPORT_FD, record, (unsigned long)(end - record));
  sys_exit(SETUP_FAILED);
}

static int has_slash(const char *text) {
  for (; *text != '\0'; text++) {
    if (*text == '/') return 1;
  }
  return 0;
}

static const char *path_of(char *const envp[]) {
  for (; *envp != 0; envp++) {
    const char *entry = *envp;
    if (entry[0] == 'P' && entry[1] == 'A' && entry[2] == 'T' && entry[3] == 'H' &&
        entry[4] == '=') {
      return entry + 5;
    }
  }
  return "/bin:/usr/bin"; /* Python's os.defpath, which the Python sandbox used. */
}

/* execvpe(3) as Python's os.execvpe does it: each PATH entry in turn; on failure, the first
 * error other than ENOENT and ENOTDIR, else the last one. Returns -errno. */
static long exec_program(char *const argv[], char *const envp[]) {
  const char *file = argv[0];
  if (has_slash(file)) return sys_execve(file, argv, envp);
  long saved = 0;
  long last = -2; /* ENOENT */
  const char *path = path_of(envp);
  for (;;) {
    char full[PATH_MAX_BYTES];
    char *end = full;
    const char *limit = full + sizeof(full) - 1;
    while (*path != '\0' && *path != ':' && end < limit) *end++ = *path++;
    if (end != full && end < limit) *end++ = '/'; /* An empty entry is the cwd. */
    for (const char *f = file; *f != '\0' && end < limit; f++) *end++ = *f;
    *end = '\0';
    last = end < limit ? sys_execve(full, argv, envp) : -36; /* ENAMETOOLONG */
    if (last != -2 && last != -20 /* ENOTDIR */ && saved == 0) saved = last;
    if (*path == '\0') break;
    path++; /* Past the ':'. */
  }
  return saved != 0 ? saved : last;
}

/* The child: unblock signals, exec the program; on failure tell the parent why. */
static __attribute__((noreturn)) void run_program(char *const argv[], char *const envp[],
                                                  int error_fd) {
  sys_sigprocmask(SIG_SETMASK, &NO_SIGNALS);
  int error = (int)-exec_program(argv, envp);
  sys_write(error_fd, &error, sizeof(error));
  sys_exit(SETUP_FAILED);
}

/* Starts the program; returns its pid once it has been exec'd. */
static int start_program(char *const argv[], char *const envp[]) {
  int error_pipe[2];
  long result = sys_pipe2(error_pipe, O_CLOEXEC);
  if (result < 0) fail("init", result, "pipe for the program's exec error");
  long pid = sys_fork();
  if (pid < 0) fail("fork", pid, "the job's program");
  if (pid == 0) run_program(argv, envp, error_pipe[1]);
  sys_close(error_pipe[1]);
  /* Every signal is blocked, so the read is not interrupted: it returns at the exec (EOF,
   * close-on-exec) or with the errno the child wrote. */
  int error = 0;
  long got = sys_read(error_pipe[0], &error, sizeof(error));
  sys_close(error_pipe[0]);
  if (got == (long)sizeof(error)) {
    int status;
    sys_wait4((int)pid, &status, 0);
    report("exec_failed", "errno", error);
    sys_exit(SETUP_FAILED);
  }
  /* The program has its own copies of its stdio; jobinit keeps none, from before it reports
   * the exec, so that whoever learns of the start finds jobinit as it stays. */
  sys_close(0);
  sys_close(1);
  sys_close(2);
  report("exec", 0, 0);
  return (int)pid;
}

/* Reaps every exited child; returns once none is left to reap now. Ends jobinit when the
 * program is among them: the kernel then kills the rest of the namespace. */
static void reap(int program) {
  for (;;) {
    int status;
    long pid = sys_wait4(-1, &status, WNOHANG);
    if (pid <= 0) return;
    if (pid == program) {
      report("exit", "status", status);
      /* wait(2)'s encoding: the low 7 bits are the signal, or 0 with the code above them. */
      int signal = status & 0x7f;
      sys_exit(signal == 0 ? (status >> 8) & 0xff : 128 + signal);
    }
  }
}

__attribute__((noreturn, used)) void jobinit_main(long *stack) {
  long argc = stack[0];
  char **argv = (char **)(stack + 1);
  char **envp = argv + argc + 1;
  long result = sys_prctl(PR_SET_DUMPABLE, 0);
  if (result < 0) fail("init", result, "PR_SET_DUMPABLE");
  result = sys_fcntl(REPORT_FD, F_SETFD, FD_CLOEXEC);
  if (result < 0) fail("init", result, "the report pipe");
  if (argc < 2) fail("init", -22 /* EINVAL */, "no program to run");
  sys_sigprocmask(SIG_SETMASK, &ALL_SIGNALS);
  int program = start_program(argv + 1, envp);
  for (;;) {
    siginfo_t info;
    long sig = sys_sigwaitinfo(&ALL_SIGNALS, &info);
    if (sig == SIGCHLD) {
      reap(program);
    } else if (sig == CONTROL_SIGNAL && info.si_code == SI_QUEUE) {
      sys_kill(program, info.si_int);
    } else if (sig > 0) {
      sys_kill(program, (int)sig);
    }
  }
}

__asm__(JOBINIT_START_ASM);
