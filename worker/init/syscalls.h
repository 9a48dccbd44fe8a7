/*
 * The few Linux system calls jobinit makes, without a C library.
 *
 * jobinit is PID 1 of every running job, so its memory is paid once per job: built with
 * -nostdlib it maps a few pages, where a static glibc binary faults in ~700 KiB at start
 * (measured). The calls below are the kernel ABI of syscall(2), "Architecture calling
 * conventions", for the two 64-bit architectures jobworker runs on. A call returns the
 * result, or -errno on failure, as the kernel does.
 */
#ifndef JOBWORKER_INIT_SYSCALLS_H_
#define JOBWORKER_INIT_SYSCALLS_H_

#include <asm/unistd.h>

#if defined(__x86_64__)

static inline long syscall6(long number, long a, long b, long c, long d, long e, long f) {
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  register long r9 __asm__("r9") = f;
  long result;
  __asm__ volatile("syscall"
                   : "=a"(result)
                   : "a"(number), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  return result;
}

/* The kernel starts a program with argc at the stack pointer, then argv and envp
 * (System V ABI, "Process Initialization"); the stack is 16-byte aligned there. */
#define JOBINIT_START_ASM                        \
  ".globl _start\n"                              \
  "_start:\n"                                    \
  "  xor %rbp, %rbp\n"                           \
  "  mov %rsp, %rdi\n"                           \
  "  and $-16, %rsp\n"                           \
  "  call jobinit_main\n"                        \
  "  hlt\n"

#elif defined(__aarch64__)

static inline long syscall6(long number, long a, long b, long c, long d, long e, long f) {
  register long x8 __asm__("x8") = number;
  register long x0 __asm__("x0") = a;
  register long x1 __asm__("x1") = b;
  register long x2 __asm__("x2") = c;
  register long x3 __asm__("x3") = d;
  register long x4 __asm__("x4") = e;
  register long x5 __asm__("x5") = f;
  __asm__ volatile("svc 0"
                   : "+r"(x0)
                   : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
                   : "memory");
  return x0;
}

#define JOBINIT_START_ASM                        \
  ".globl _start\n"                              \
  "_start:\n"                                    \
  "  mov x29, #0\n"                              \
  "  mov x30, #0\n"                              \
  "  mov x0, sp\n"                               \
  "  bl jobinit_main\n"                          \
  "  brk #0\n"

#else
#error "jobinit supports x86_64 and aarch64 only"
#endif

#define SYSCALL(n, a, b, c, d) syscall6((n), (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)

static inline long sys_read(int fd, void *buf, unsigned long len) {
  return SYSCALL(__NR_read, fd, buf, len, 0);
}
static inline long sys_write(int fd, const void *buf, unsigned long len) {
  return SYSCALL(__NR_write, fd, buf, len, 0);
}
static inline long sys_close(int fd) { return SYSCALL(__NR_close, fd, 0, 0, 0); }
static inline long sys_pipe2(int fds[2], int flags) {
  return SYSCALL(__NR_pipe2, fds, flags, 0, 0);
}
static inline long sys_fcntl(int fd, int cmd, long arg) {
  return SYSCALL(__NR_fcntl, fd, cmd, arg, 0);
}
static inline long sys_prctl(int option, long arg) {
  return SYSCALL(__NR_prctl, option, arg, 0, 0);
}
/* fork(2) is clone(SIGCHLD) (aarch64 has no fork system call); the other arguments are 0, so
 * their order, which differs between architectures, does not matter. */
static inline long sys_fork(void) { return SYSCALL(__NR_clone, 17 /* SIGCHLD */, 0, 0, 0); }
static inline long sys_execve(const char *path, char *const argv[], char *const envp[]) {
  return SYSCALL(__NR_execve, path, argv, envp, 0);
}
static inline long sys_wait4(int pid, int *status, int options) {
  return SYSCALL(__NR_wait4, pid, status, options, 0);
}
static inline long sys_kill(int pid, int sig) { return SYSCALL(__NR_kill, pid, sig, 0, 0); }
/* The kernel's sigset is 64 bits on both architectures: sigsetsize is 8. */
static inline long sys_sigprocmask(int how, const unsigned long *set) {
  return SYSCALL(__NR_rt_sigprocmask, how, set, 0, sizeof(*set));
}
static inline long sys_sigwaitinfo(const unsigned long *set, void *info) {
  return SYSCALL(__NR_rt_sigtimedwait, set, info, 0, sizeof(*set));
}
static inline __attribute__((noreturn)) void sys_exit(int code) {
  for (;;) SYSCALL(__NR_exit_group, code, 0, 0, 0);
}

#endif /* JOBWORKER_INIT_SYSCALLS_H_ */
