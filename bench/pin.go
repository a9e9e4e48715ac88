package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Against smtp-sink, every client runs in a process of its own, like
// smtp-source, pinned to a CPU with taskset(1), and smtp-sink is pinned too.
//
// Without pinning, a lock-step client's speed depends on whether the
// scheduler puts it on the server's CPU: on a virtual machine a wake-up on
// the other CPU can cost over 100 µs against a few µs for a switch on the
// same one, so that smtp-source alone varied between 1,000 and 4,000
// messages/s from run to run, and every ratio with it.
//
// pinSame puts the client on the server's CPU, pinSplit on another one;
// pinOff pins nothing and runs the Go clients in this process.
const (
	pinSame  = "same"
	pinSplit = "split"
	pinOff   = "off"
)

const (
	sinkCPU  = 0
	otherCPU = 1
)

// childEnv, when set, makes this program (or the test binary) run one
// client and print the time it took: "client name\taddress\tmessages".
const childEnv = "RESMTP_BENCH_CHILD"

// childMain runs the client childEnv names, if it is set, and exits.
func childMain() {
	spec, ok := os.LookupEnv(childEnv)
	if !ok {
		return
	}
	f := strings.Split(spec, "\t")
	if len(f) != 3 {
		fmt.Fprintf(os.Stderr, "%s: bad value %q\n", childEnv, spec)
		os.Exit(2)
	}
	n, err := strconv.Atoi(f[2])
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: bad message count %q\n", childEnv, f[2])
		os.Exit(2)
	}
	for _, c := range clients {
		if c.name != f[0] {
			continue
		}
		start := time.Now()
		if err := c.run(context.Background(), f[1], newWorkload(n)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(int64(time.Since(start)))
		os.Exit(0)
	}
	fmt.Fprintf(os.Stderr, "%s: no client %q\n", childEnv, f[0])
	os.Exit(2)
}

// pinning says how processes are pinned; "" if mode is pinOff or pinning
// is not possible, with the reason.
type pinning struct {
	mode    string
	taskset string // path of taskset
	why     string // why not, when mode is pinOff
}

func newPinning(mode string) pinning {
	if mode == pinOff {
		return pinning{mode: pinOff, why: "-pin off"}
	}
	if runtime.GOOS != "linux" || runtime.NumCPU() < 2 {
		return pinning{mode: pinOff, why: "needs Linux and 2 CPUs"}
	}
	ts, err := exec.LookPath("taskset")
	if err != nil {
		return pinning{mode: pinOff, why: "taskset not found"}
	}
	return pinning{mode: mode, taskset: ts}
}

// command returns a command running name args, pinned to cpu if pinning.
func (p pinning) command(ctx context.Context, cpu int, name string, args ...string) *exec.Cmd {
	if p.mode == pinOff {
		return exec.CommandContext(ctx, name, args...)
	}
	return exec.CommandContext(ctx, p.taskset, append([]string{"-c", strconv.Itoa(cpu), name}, args...)...)
}

// clientCPU is the CPU a client runs on.
func (p pinning) clientCPU() int {
	if p.mode == pinSame {
		return sinkCPU
	}
	return otherCPU
}

func (p pinning) runChild(ctx context.Context, name, addr string, messages int) (time.Duration, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	cmd := p.command(ctx, p.clientCPU(), exe)
	cmd.Env = append(os.Environ(), childEnv+"="+name+"\t"+addr+"\t"+strconv.Itoa(messages))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("%s in a child process: %v: %s", name, err, strings.TrimSpace(stderr.String()))
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s in a child process: output %q", name, out)
	}
	return time.Duration(ns), nil
}
