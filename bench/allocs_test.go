package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/resmtp/smtp/bench/discard"
)

// serverEnv makes the test binary a discarding server: it prints its
// address and serves until its standard input closes.
const serverEnv = "RESMTP_BENCH_SERVER"

// serverCPUEnv pins the discarding server to the CPUs it lists, with
// taskset(1). Run the benchmark pinned to the others (taskset -c 1 go test
// ...), and each side has CPUs of its own: without that, the CPU time a
// client uses per message depends on whether the scheduler puts its
// threads beside the server's, and varied by 2x from run to run.
const serverCPUEnv = "RESMTP_BENCH_SERVER_CPU"

// serverMain runs the discarding server of BenchmarkClientAllocs in this
// process, if asked to.
func serverMain() {
	ext, ok := os.LookupEnv(serverEnv)
	if !ok {
		return
	}
	cfg := discard.Config{}
	if ext != "" {
		cfg.Extensions = strings.Split(ext, ",")
	}
	s, err := discard.NewServer(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(s.Addr)
	io.Copy(io.Discard, os.Stdin)
	s.Close()
	os.Exit(0)
}

// startServerProcess starts a discarding server in a process of its own,
// offering ext ("" for its defaults), and returns its address.
func startServerProcess(b *testing.B, ext string) string {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	if cpu := os.Getenv(serverCPUEnv); cpu != "" {
		cmd = exec.Command("taskset", "-c", cpu, os.Args[0], "-test.run=^$")
	}
	cmd.Env = append(os.Environ(), serverEnv+"="+ext)
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { in.Close(); cmd.Wait() })
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		b.Fatal(err)
	}
	return strings.TrimSpace(addr)
}

// BenchmarkClientAllocs sends b.N messages (2 KiB, 3 recipients) over one
// connection, or through a Pool from 8 goroutines, to a discarding server
// in another process, so that allocs/op, B/op and the CPU time it reports
// (cpu-ns/msg: user and system time of this process, from getrusage)
// count the client alone.
//
//	go test -run '^$' -bench ClientAllocs -benchmem -count 6 . | tee allocs.txt
func BenchmarkClientAllocs(b *testing.B) {
	full := startServerProcess(b, "")
	dataOnly := startServerProcess(b, "PIPELINING,8BITMIME,SIZE 1073741824")
	for _, c := range clients {
		addr := dataOnly
		if strings.Contains(c.name, "CHUNKING") {
			addr = full
		}
		b.Run(slug(c.name), func(b *testing.B) {
			w := newWorkload(b.N)
			b.ReportAllocs()
			user, sys := cpuTimes()
			if err := c.run(context.Background(), addr, w); err != nil {
				b.Fatal(err)
			}
			reportCPU(b, user, sys)
		})
	}
	for _, c := range poolClients {
		addr := dataOnly
		if strings.Contains(c.name, "CHUNKING") {
			addr = full
		}
		b.Run("G=8/"+slug(c.name), func(b *testing.B) {
			w := newWorkload(b.N)
			b.ReportAllocs()
			user, sys := cpuTimes()
			if err := c.run(context.Background(), addr, 8, b.N, w); err != nil {
				b.Fatal(err)
			}
			reportCPU(b, user, sys)
		})
	}
}

// cpuTimes returns the user and the system CPU time this process has used,
// in nanoseconds.
func cpuTimes() (user, sys int64) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	return ru.Utime.Nano(), ru.Stime.Nano()
}

// reportCPU reports the CPU time used since user0 and sys0 (from cpuTimes)
// per message: in all (cpu-ns/msg) and in the kernel (sys-ns/msg).
func reportCPU(b *testing.B, user0, sys0 int64) {
	user, sys := cpuTimes()
	b.ReportMetric(float64(user-user0+sys-sys0)/float64(b.N), "cpu-ns/msg")
	b.ReportMetric(float64(sys-sys0)/float64(b.N), "sys-ns/msg")
}
