// containerd's reaper, wired as containerd's shim wires it, as a baseline of `npm run bench`:
// the process is a subreaper (SetSubreaper(1)), SIGCHLD goes to a channel of 32 whose loop calls
// Reap(), and every subscriber is a channel of Default.Subscribe() read by a goroutine of its own
// (the shim's processExits). Both major versions: v1 (sys/reaper, v1.4.13) and v2
// (pkg/sys/reaper, v2.4.2). One JSON line on stdout.
//
//	containerd-reaper drain VERSION N SUBSCRIBERS HELPER [LIVE]
//	    HELPER makes N zombies (`helper zombies N`) and exits; they are re-parented here together.
//	    The reap loop starts once the helper is reaped; the clock runs from the helper's own
//	    CLOCK_MONOTONIC stamp just before its exit (`zombies N stamp`) until every
//	    subscriber has received all N exits. With LIVE, that many `sleep` children live beside
//	    them all along (killed at the end), as a supervisor's would.
//	containerd-reaper latency VERSION COUNT HELPER STAMPFILE GAP_MS
//	    COUNT children (`helper stamp STAMPFILE`), one at a time, GAP_MS apart; prints, for each,
//	    the CLOCK_MONOTONIC time at which the subscriber goroutine received its exit.
//	containerd-reaper stuck VERSION N HELPER SECONDS
//	    two subscribers, one of which never reads; N zombies at once. Prints how many exits the
//	    reading one had received after each second, and the goroutines then running.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	runc "github.com/containerd/go-runc"
	"golang.org/x/sys/unix"

	reaper1 "github.com/containerd/containerd/sys/reaper"
	reaper2 "github.com/containerd/containerd/v2/pkg/sys/reaper"
)

// The three calls the shim makes, for one version of the package.
type reaper struct {
	setSubreaper func(int) error
	reap         func() error
	subscribe    func() chan runc.Exit
	unsubscribe  func(chan runc.Exit)
}

func pick(version string) reaper {
	switch version {
	case "1":
		return reaper{reaper1.SetSubreaper, reaper1.Reap, reaper1.Default.Subscribe, reaper1.Default.Unsubscribe}
	case "2":
		return reaper{reaper2.SetSubreaper, reaper2.Reap, reaper2.Default.Subscribe, reaper2.Default.Unsubscribe}
	}
	fail("unknown version %q: 1 or 2", version)
	return reaper{}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "containerd-reaper: "+format+"\n", args...)
	os.Exit(2)
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		fail("not a number: %q", s)
	}
	return n
}

func monoNs() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		fail("clock_gettime: %v", err)
	}
	return ts.Nano()
}

// The shim's signal loop: SIGCHLD into a channel of 32, Reap() for each.
func startReaping(r reaper, signals chan os.Signal) {
	go func() {
		for range signals {
			if err := r.reap(); err != nil {
				fmt.Fprintf(os.Stderr, "reap: %v\n", err)
			}
		}
	}()
}

func notifySigchld() chan os.Signal {
	signals := make(chan os.Signal, 32)
	signal.Notify(signals, unix.SIGCHLD)
	return signals
}

// Runs HELPER with args and reaps it itself (before the reap loop runs): its zombies are then ours.
// Returns what the helper printed on stdout (read after it is reaped).
func runHelper(helper string, args ...string) string {
	cmd := exec.Command(helper, args...)
	cmd.Stderr = os.Stderr
	r, w, err := os.Pipe()
	if err != nil {
		fail("pipe: %v", err)
	}
	cmd.Stdout = w
	if err := cmd.Start(); err != nil {
		fail("start %s: %v", helper, err)
	}
	_ = w.Close()
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(cmd.Process.Pid, &ws, 0, nil)
		if err != unix.EINTR {
			break
		}
	}
	if !ws.Exited() || ws.ExitStatus() != 0 {
		fail("%s %v failed: %v", helper, args, ws)
	}
	_ = cmd.Process.Release()
	out, err := io.ReadAll(r)
	_ = r.Close()
	if err != nil {
		fail("read %s: %v", helper, err)
	}
	return string(out)
}

func printJSON(v any) {
	out, _ := json.Marshal(v)
	fmt.Println(string(out))
}

// The main goroutine stays on the main thread (Go starts main.main there when init locks it),
// so that the live children of `drain ... LIVE` are all forked by it and listed under it, where
// the adopted zombies are listed too: a supervisor in Node has them there (libuv forks on the
// main thread), and every wait for "any child" walks that list from its head. Forked from
// whatever threads Go's scheduler picked, they would be spread over several lists, and a wait
// would pass fewer of them by chance.
func init() {
	runtime.LockOSThread()
}

// startSleepers starts n children that live until killed.
func startSleepers(n int) []*exec.Cmd {
	cmds := make([]*exec.Cmd, 0, n)
	for i := 0; i < n; i++ {
		cmd := exec.Command("sleep", "600")
		if err := cmd.Start(); err != nil {
			fail("start sleep: %v", err)
		}
		cmds = append(cmds, cmd)
	}
	return cmds
}

func drain(r reaper, n, subscribers int, helper string, live int) {
	signals := notifySigchld()
	sleepers := startSleepers(live)
	channels := make([]chan runc.Exit, 0, subscribers)
	// Killed on the way out, once no subscriber is left to hold up their exits, and reaped by
	// the reap loop before this process ends (none is left to the bench that runs it).
	defer func() {
		for _, ec := range channels {
			r.unsubscribe(ec)
		}
		for _, s := range sleepers {
			_ = s.Process.Kill()
		}
		deadline := time.Now().Add(10 * time.Second)
		for _, s := range sleepers {
			for unix.Kill(s.Process.Pid, 0) == nil && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	var wg sync.WaitGroup
	ends := make([]int64, subscribers)
	for i := 0; i < subscribers; i++ {
		ec := r.subscribe()
		channels = append(channels, ec)
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			got := 0
			for range ec {
				if got++; got == n {
					ends[i] = monoNs()
					return
				}
			}
		}(i)
	}
	// t0: the helper's own CLOCK_MONOTONIC stamp just before its exit (the same clock as every
	// drain of bench/drain.ts); loop0: when the reap loop starts (the clock up to issue 34).
	stamp := runHelper(helper, "zombies", strconv.Itoa(n), "stamp")
	loop0 := monoNs()
	t0, err := strconv.ParseInt(strings.TrimSpace(stamp), 10, 64)
	if err != nil {
		fail("helper stamp %q: %v", stamp, err)
	}
	startReaping(r, signals)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(120 * time.Second):
		fail("timed out: the subscribers did not get all %d exits", n)
	}
	end := int64(0)
	for _, e := range ends {
		end = max(end, e)
	}
	printJSON(map[string]any{"n": n, "subscribers": subscribers, "ms": float64(end-t0) / 1e6, "usPerExit": float64(end-t0) / 1e3 / float64(n),
		"loopUsPerExit": float64(end-loop0) / 1e3 / float64(n)})
}

func latency(r reaper, count int, helper, stampFile string, gap time.Duration) {
	signals := notifySigchld()
	startReaping(r, signals)
	received := make(chan [2]int64, 1)
	ec := r.subscribe()
	go func() {
		for e := range ec {
			received <- [2]int64{int64(e.Pid), monoNs()}
		}
	}()
	out := make([][2]int64, 0, count)
	for i := 0; i < count; i++ {
		cmd := exec.Command(helper, "stamp", stampFile)
		if err := cmd.Start(); err != nil {
			fail("start: %v", err)
		}
		pid := int64(cmd.Process.Pid)
		for {
			select {
			case got := <-received:
				if got[0] != pid {
					continue
				}
				out = append(out, got)
			case <-time.After(10 * time.Second):
				fail("no exit for pid %d", pid)
			}
			break
		}
		_ = cmd.Process.Release()
		time.Sleep(gap)
	}
	printJSON(map[string]any{"received": out})
}

func stuck(r reaper, n int, helper string, seconds int) {
	signals := notifySigchld()
	_ = r.subscribe() // never read
	var got atomic.Int64
	ec := r.subscribe()
	go func() {
		for range ec {
			got.Add(1)
		}
	}()
	before := runtime.NumGoroutine()
	runHelper(helper, "zombies", strconv.Itoa(n))
	startReaping(r, signals)
	perSecond := make([]int64, 0, seconds)
	goroutines := make([]int, 0, seconds)
	for s := 0; s < seconds; s++ {
		time.Sleep(time.Second)
		perSecond = append(perSecond, got.Load())
		goroutines = append(goroutines, runtime.NumGoroutine()-before)
	}
	printJSON(map[string]any{"n": n, "readerGotAfterEachSecond": perSecond, "extraGoroutinesAfterEachSecond": goroutines})
	os.Exit(0) // the stuck notifications never end
}

func main() {
	a := os.Args
	if len(a) < 3 {
		fail("usage: drain|latency|stuck VERSION ...")
	}
	r := pick(a[2])
	if err := r.setSubreaper(1); err != nil {
		fail("SetSubreaper: %v", err)
	}
	switch {
	case a[1] == "drain" && (len(a) == 6 || len(a) == 7):
		live := 0
		if len(a) == 7 {
			live = atoi(a[6])
		}
		drain(r, atoi(a[3]), atoi(a[4]), a[5], live)
	case a[1] == "latency" && len(a) == 7:
		latency(r, atoi(a[3]), a[4], a[5], time.Duration(atoi(a[6]))*time.Millisecond)
	case a[1] == "stuck" && len(a) == 6:
		stuck(r, atoi(a[3]), a[4], atoi(a[5]))
	default:
		fail("usage: drain VERSION N SUBSCRIBERS HELPER [LIVE] | latency VERSION COUNT HELPER STAMPFILE GAP_MS | stuck VERSION N HELPER SECONDS")
	}
}
