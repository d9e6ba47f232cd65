// Child-process helper for `npm run bench` (compiled at bench time into bench/.build/).
//
//   zombies N [reap]        vfork N children that _exit(0) at once and, once all N are zombies,
//                           exit: the N zombies are re-parented together to the nearest
//                           subreaper (the benchmark's Node process).
//                           With `reap`, wait for them first (nothing is left behind).
//                           With `stamp`, print "<CLOCK_MONOTONIC ns>\n" on stdout just before
//                           exiting, once all N are zombies: the drain clock's t0, the same
//                           for every implementation that drains them (bench/drain.ts).
//   drain N MODE            become a subreaper, run `zombies N` and, once all N are our zombies,
//                           time a drain of them; print one JSON line. MODE:
//                             wait4  bare `wait4(-1)` loop (the floor)
//                             peek   the engine's syscalls: waitid(P_ALL, WNOWAIT) + wait4(pid)
//                             proc   peek + read /proc/<pid>/stat and /status (what the engine
//                                    read of each zombie up to issue 13) + wait4(pid)
//                             stat1  peek + ONE read(2) of /proc/<pid>/stat into a stack buffer
//                                    + wait4(pid): the same work as the engine (issue 13)
//                             taskstats  peek + one taskstats request for the pid over generic
//                                    netlink (name and age, as the engine asks where the kernel
//                                    serves it) + wait4(pid); exits 3 if it is not served
//   latency N FILE GAP_US   become a subreaper; N times: posix_spawn `stamp FILE`, block in
//                           wait4(-1) and print "<pid> <CLOCK_MONOTONIC ns>" when it returns,
//                           then sleep GAP_US (the bare C subreaper's exit latency)
//   stamp FILE              append "<pid> <CLOCK_MONOTONIC ns> <CLOCK_REALTIME ns>\n" to FILE,
//                           then _exit(0)
//   print-stamp             write "<pid> <CLOCK_MONOTONIC ns> <CLOCK_REALTIME ns>\n" to stdout
//                           (a pipe, in bench/usage.ts), then _exit(0)
//   orphan-stamp FILE US    fork a grandchild and exit at once; the grandchild (an orphan by
//                           then) sleeps US microseconds, stamps FILE, and _exits(0)
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/taskstats.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static long long now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void stamp(const char *file) {
  char buf[96];
  long long ns = now_ns();
  struct timespec real;
  clock_gettime(CLOCK_REALTIME, &real);
  int len = snprintf(buf, sizeof buf, "%d %lld %lld\n", (int)getpid(), ns, (long long)real.tv_sec * 1000000000LL + real.tv_nsec);
  int fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd >= 0) {
    if (write(fd, buf, (size_t)len) < 0) _exit(2);
    close(fd);
  }
  _exit(0);
}

static int zombies(long n, int reap, int print_stamp) {
  pid_t *pids = malloc(sizeof(pid_t) * (size_t)(n > 0 ? n : 1));
  if (!pids) return 1;
  for (long i = 0; i < n; i++) {
    pid_t p = vfork();
    if (p == 0) _exit(0);
    if (p < 0) {
      perror("vfork");
      return 1;
    }
    pids[i] = p;
  }
  // vfork resumes the parent once the child has let go of its memory, which can be just before
  // it is a zombie: wait (without reaping) until each one is, so that all N are ready together.
  for (long i = 0; i < n; i++) {
    siginfo_t info;
    while (waitid(P_PID, (id_t)pids[i], &info, WEXITED | WNOWAIT) != 0 && errno == EINTR) {
    }
  }
  if (reap)
    while (wait4(-1, NULL, __WALL, NULL) > 0) {
    }
  free(pids);
  if (print_stamp) {
    // The last thing before the exit that re-parents the zombies: t0 of every drain.
    char buf[32];
    int len = snprintf(buf, sizeof buf, "%lld\n", now_ns());
    if (write(STDOUT_FILENO, buf, (size_t)len) != len) return 1;
  }
  return 0;
}

static void read_file(const char *path) {
  char buf[2048];
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  while (read(fd, buf, sizeof buf) > 0) {
  }
  close(fd);
}

/* One read into a stack buffer, as the engine reads /proc/<pid>/stat. */
static void read_once(const char *path) {
  char buf[1024];
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  if (read(fd, buf, sizeof buf) < 0) buf[0] = 0;
  close(fd);
}

/* A generic-netlink request with one attribute; returns the reply's length or -1. */
struct ts_msg {
  struct nlmsghdr n;
  struct genlmsghdr g;
  char buf[1024];
};
static int ts_request(int sock, int family, int cmd, int attr, const void *value, int len, struct ts_msg *reply) {
  struct ts_msg m;
  memset(&m, 0, sizeof m);
  m.n.nlmsg_len = NLMSG_LENGTH(GENL_HDRLEN);
  m.n.nlmsg_type = family;
  m.n.nlmsg_flags = NLM_F_REQUEST;
  m.g.cmd = cmd;
  m.g.version = 1;
  struct nlattr *na = (struct nlattr *)((char *)&m + m.n.nlmsg_len);
  na->nla_type = attr;
  na->nla_len = NLA_HDRLEN + len;
  memcpy((char *)na + NLA_HDRLEN, value, len);
  m.n.nlmsg_len += NLA_ALIGN(na->nla_len);
  if (send(sock, &m, m.n.nlmsg_len, 0) < 0) return -1;
  int got = recv(sock, reply, sizeof *reply, MSG_DONTWAIT);
  if (got < 0 || reply->n.nlmsg_type == NLMSG_ERROR) return -1;
  return got;
}

/* The TASKSTATS family's id, or -1 where it is not served. */
static int ts_family(int sock) {
  struct ts_msg r;
  if (ts_request(sock, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, CTRL_ATTR_FAMILY_NAME, TASKSTATS_GENL_NAME,
                 sizeof TASKSTATS_GENL_NAME, &r) < 0)
    return -1;
  char *at = (char *)&r + NLMSG_LENGTH(GENL_HDRLEN), *end = (char *)&r + r.n.nlmsg_len;
  while (at + NLA_HDRLEN <= end) {
    struct nlattr *na = (struct nlattr *)at;
    if (na->nla_len < NLA_HDRLEN) break;
    if (na->nla_type == CTRL_ATTR_FAMILY_ID) return *(unsigned short *)(at + NLA_HDRLEN);
    at += NLA_ALIGN(na->nla_len);
  }
  return -1;
}

static int latency(long n, const char *self, const char *file, long gap_us) {
  if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
    perror("prctl");
    return 1;
  }
  char *argv[] = {(char *)self, "stamp", (char *)file, NULL};
  for (long i = 0; i < n; i++) {
    pid_t child;
    if (posix_spawn(&child, self, NULL, NULL, argv, environ) != 0) {
      perror("posix_spawn");
      return 1;
    }
    int st;
    struct rusage ru;
    pid_t got = wait4(-1, &st, __WALL, &ru);
    long long at = now_ns();
    printf("%d %lld\n", (int)got, at);
    struct timespec d = {gap_us / 1000000, (gap_us % 1000000) * 1000};
    while (nanosleep(&d, &d) != 0 && errno == EINTR) {
    }
  }
  return 0;
}

static int drain(long n, const char *self, const char *mode) {
  if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
    perror("prctl");
    return 1;
  }
  char count[32];
  snprintf(count, sizeof count, "%ld", n);
  char *argv[] = {(char *)self, "zombies", count, "stamp", NULL};
  pid_t helper;
  // The helper's stamp comes back over a pipe: t0 is the helper's last moment, as in every drain.
  int stamp_pipe[2];
  if (pipe2(stamp_pipe, O_CLOEXEC) != 0) return 1;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, stamp_pipe[1], STDOUT_FILENO);
  long long s0 = now_ns();
  if (posix_spawn(&helper, self, &fa, NULL, argv, environ) != 0) {
    perror("posix_spawn");
    return 1;
  }
  posix_spawn_file_actions_destroy(&fa);
  close(stamp_pipe[1]);
  int st;
  if (waitpid(helper, &st, 0) != helper) return 1;
  char stamp_buf[32] = {0};
  if (read(stamp_pipe[0], stamp_buf, sizeof stamp_buf - 1) <= 0) return 1;
  close(stamp_pipe[0]);
  long long helper_stamp = atoll(stamp_buf);
  int ts_sock = -1, ts_fam = -1;
  if (strcmp(mode, "taskstats") == 0) {
    ts_sock = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
    struct sockaddr_nl local = {.nl_family = AF_NETLINK};
    if (ts_sock < 0 || bind(ts_sock, (struct sockaddr *)&local, sizeof local) != 0 || (ts_fam = ts_family(ts_sock)) < 0) {
      while (wait4(-1, &st, __WALL, NULL) > 0) {
      }
      return 3;
    }
  }
  // Where the loop starts (after the helper is reaped); the clock starts at the helper's stamp.
  long long loop0 = now_ns();
  long long t0 = helper_stamp;
  long reaped = 0;
  struct rusage ru;
  if (strcmp(mode, "wait4") == 0) {
    while (wait4(-1, &st, __WALL, &ru) > 0) reaped++;
  } else {
    int inspect = strcmp(mode, "proc") == 0;
    int stat1 = strcmp(mode, "stat1") == 0;
    char path[64];
    for (;;) {
      siginfo_t info;
      memset(&info, 0, sizeof info);
      if (waitid(P_ALL, 0, &info, WEXITED | WNOWAIT | WNOHANG | __WALL) != 0 || info.si_pid == 0) break;
      pid_t pid = info.si_pid;
      if (inspect) {
        snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
        read_file(path);
        snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
        read_file(path);
      } else if (stat1) {
        snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
        read_once(path);
      } else if (ts_sock >= 0) {
        struct ts_msg r;
        unsigned int p = (unsigned int)pid;
        if (ts_request(ts_sock, ts_fam, TASKSTATS_CMD_GET, TASKSTATS_CMD_ATTR_PID, &p, sizeof p, &r) < 0) return 1;
      }
      if (wait4(pid, &st, WNOHANG | __WALL, &ru) == pid) reaped++;
    }
  }
  long long t1 = now_ns();
  printf("{\"mode\":\"%s\",\"n\":%ld,\"reaped\":%ld,\"usPerExit\":%.4f,\"loopUsPerExit\":%.4f,\"spawnUsPerChild\":%.4f}\n", mode, n,
         reaped, (double)(t1 - t0) / 1000.0 / (double)(reaped ? reaped : 1), (double)(t1 - loop0) / 1000.0 / (double)(reaped ? reaped : 1),
         (double)(t0 - s0) / 1000.0 / (double)n);
  return reaped == n ? 0 : 1;
}

static void print_stamp(void) {
  char buf[96];
  long long ns = now_ns();
  struct timespec real;
  clock_gettime(CLOCK_REALTIME, &real);
  int len = snprintf(buf, sizeof buf, "%d %lld %lld\n", (int)getpid(), ns, (long long)real.tv_sec * 1000000000LL + real.tv_nsec);
  _exit(write(STDOUT_FILENO, buf, (size_t)len) == len ? 0 : 2);
}

int main(int argc, char **argv) {
  if (argc >= 3 && strcmp(argv[1], "zombies") == 0) {
    int reap = 0, print_stamp = 0;
    for (int i = 3; i < argc; i++) {
      if (strcmp(argv[i], "reap") == 0) reap = 1;
      if (strcmp(argv[i], "stamp") == 0) print_stamp = 1;
    }
    return zombies(atol(argv[2]), reap, print_stamp);
  }
  if (argc >= 4 && strcmp(argv[1], "drain") == 0) return drain(atol(argv[2]), argv[0], argv[3]);
  if (argc >= 3 && strcmp(argv[1], "stamp") == 0) stamp(argv[2]);
  if (argc >= 2 && strcmp(argv[1], "print-stamp") == 0) print_stamp();
  if (argc >= 5 && strcmp(argv[1], "latency") == 0) return latency(atol(argv[2]), argv[0], argv[3], atol(argv[4]));
  if (argc >= 4 && strcmp(argv[1], "orphan-stamp") == 0) {
    pid_t p = fork();
    if (p == 0) {
      struct timespec d = {atol(argv[3]) / 1000000, (atol(argv[3]) % 1000000) * 1000};
      while (nanosleep(&d, &d) != 0 && errno == EINTR) {
      }
      stamp(argv[2]);
    }
    _exit(p < 0 ? 1 : 0);
  }
  fprintf(stderr, "usage: helper zombies N [reap] [stamp] | drain N wait4|peek|proc|stat1|taskstats | latency N FILE GAP_US | stamp FILE | print-stamp | orphan-stamp FILE US\n");
  return 2;
}
