package realworld

import (
	"bufio"
	"bytes"
	"context"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"mime"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resmtp/smtp/internal/smtptest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// module is a published module that imports net/smtp, with the scenario
// program in testdata/<name> that drives it.
type module struct {
	name    string // directory under testdata
	path    string // module path
	version string // exact version fetched from the module proxy
}

const (
	resmtpPath = "github.com/resmtp/smtp"
	// anyVersion is required of a module that a replace directive provides.
	anyVersion = "v0.0.0-00010101000000-000000000000"

	// The two builds of every program.
	published = "net/smtp"
	swapped   = "resmtp"
)

// variants lists the builds in the order they are run and compared.
var variants = []string{published, swapped}

// requireRealWorld skips the test unless RESMTP_REALWORLD=1.
func requireRealWorld(t *testing.T) {
	t.Helper()
	if os.Getenv("RESMTP_REALWORLD") != "1" {
		t.Skip("skipping: needs the Go module proxy; run with " +
			"RESMTP_REALWORLD=1 go test -run '^TestRealWorld' -v -count=1 ./internal/realworld/")
	}
}

var (
	workOnce sync.Once
	workDir  string // shared by the tests of one run, removed by TestMain
	workErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if workDir != "" {
		os.RemoveAll(workDir)
	}
	os.Exit(code)
}

// work returns a new directory under the run's shared temporary directory.
func work(t *testing.T, name string) string {
	t.Helper()
	workOnce.Do(func() { workDir, workErr = os.MkdirTemp("", "resmtp-realworld-") })
	require.NoError(t, workErr)
	dir, err := os.MkdirTemp(workDir, name+"-")
	require.NoError(t, err)
	return dir
}

// repoRoot returns the root of this repository (the module github.com/resmtp/smtp).
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	require.NoError(t, err)
	require.Contains(t, string(gomod), "module "+resmtpPath+"\n")
	return root
}

// goCmd runs the go command in dir with a bounded time. GOFLAGS=-mod=mod
// lets it complete the temporary go.mod and go.sum files; the module cache
// is the shared one.
func goCmd(t *testing.T, timeout time.Duration, dir string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod -buildvcs=false", "GOWORK=off", "GOTOOLCHAIN=local")
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		err = fmt.Errorf("go %s in %s: %w\n%s", strings.Join(args, " "), dir, err, out)
	}
	return string(out), err
}

// download fetches m through the module proxy (or finds it in the module
// cache) and returns its read-only directory there.
func download(t *testing.T, m module) string {
	t.Helper()
	out, err := goCmd(t, 2*time.Minute, work(t, "download"), "mod", "download", "-json", m.path+"@"+m.version)
	require.NoError(t, err)
	var info struct{ Dir, Error string }
	require.NoError(t, json.Unmarshal([]byte(out), &info), "%s", out)
	require.Empty(t, info.Error)
	require.NotEmpty(t, info.Dir)
	return info.Dir
}

// copyModule copies the module in src to the new directory dst, writable,
// giving it a go.mod if it has none (a "+incompatible" module). With swap,
// every "net/smtp" import becomes smtp "github.com/resmtp/smtp" and go.mod
// requires this repository through a replace directive.
func copyModule(t *testing.T, m module, src, dst string, swap bool) {
	t.Helper()
	require.NoError(t, os.CopyFS(dst, os.DirFS(src)))
	gomod := filepath.Join(dst, "go.mod")
	if _, err := os.Stat(gomod); errors.Is(err, fs.ErrNotExist) {
		require.NoError(t, os.WriteFile(gomod, []byte("module "+m.path+"\n\ngo 1.16\n"), 0o644))
	}
	if !swap {
		return
	}
	n := 0
	err := filepath.WalkDir(dst, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") {
			return err
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		out, changed, err := swapImport(path, src)
		if err != nil || !changed {
			return err
		}
		n++
		return os.WriteFile(path, out, 0o644)
	})
	require.NoError(t, err)
	require.NotZero(t, n, "%s does not import net/smtp", m.path)
	appendFile(t, gomod, "\nrequire "+resmtpPath+" "+anyVersion+"\n\nreplace "+resmtpPath+" => "+repoRoot(t)+"\n")
	seedGoSum(t, dst)
}

// swapImport rewrites the import of "net/smtp" in the Go source src (the
// file name is for messages) to smtp "github.com/resmtp/smtp", keeping
// any name the file gave the import and every other byte. It reports
// whether the file imported net/smtp.
func swapImport(name string, src []byte) ([]byte, bool, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, name, src, parser.ImportsOnly|parser.ParseComments)
	if err != nil {
		return nil, false, err
	}
	out := slices.Clone(src)
	changed := false
	for _, spec := range slices.Backward(f.Imports) {
		if p, err := strconv.Unquote(spec.Path.Value); err != nil || p != "net/smtp" {
			continue
		}
		repl := strconv.Quote(resmtpPath)
		if spec.Name == nil {
			repl = "smtp " + repl
		}
		start, end := fset.Position(spec.Path.Pos()).Offset, fset.Position(spec.Path.End()).Offset
		out = slices.Concat(out[:start], []byte(repl), out[end:])
		changed = true
	}
	if changed {
		if _, err := parser.ParseFile(token.NewFileSet(), name, out, parser.ImportsOnly); err != nil {
			return nil, false, fmt.Errorf("rewritten %s: %w", name, err)
		}
	}
	return out, changed, nil
}

func appendFile(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	require.NoError(t, err)
	_, err = f.WriteString(text)
	require.NoError(t, errors.Join(err, f.Close()))
}

// seedGoSum adds this repository's go.sum to dir's, so that its
// dependencies need no checksum lookups.
func seedGoSum(t *testing.T, dir string) {
	t.Helper()
	sums, err := os.ReadFile(filepath.Join(repoRoot(t), "go.sum"))
	require.NoError(t, err)
	appendFile(t, filepath.Join(dir, "go.sum"), string(sums))
}

// build is the pair of binaries of one scenario program, built once per run.
type build struct {
	once sync.Once
	bins map[string]string // variant -> binary
	ok   bool
}

var (
	buildsMu sync.Mutex
	builds   = map[string]*build{}
)

// binaries returns the scenario program of m built as published and with
// the swapped import, building them on first use.
func binaries(t *testing.T, m module) map[string]string {
	t.Helper()
	requireRealWorld(t)
	buildsMu.Lock()
	b := builds[m.name]
	if b == nil {
		b = &build{}
		builds[m.name] = b
	}
	buildsMu.Unlock()
	b.once.Do(func() {
		b.bins = buildBoth(t, m)
		b.ok = true
	})
	require.True(t, b.ok, "building %s failed (see the first test that used it)", m.path)
	return b.bins
}

func buildBoth(t *testing.T, m module) map[string]string {
	t.Helper()
	src := download(t, m)
	lib := work(t, m.name+"-lib")
	copyModule(t, m, src, lib, true)
	bins := map[string]string{}
	for _, v := range variants {
		dir := work(t, m.name+"-prog")
		for _, f := range []string{filepath.Join("testdata", "report.go"), filepath.Join("testdata", m.name, "main.go")} {
			data, err := os.ReadFile(f)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(dir, filepath.Base(f)), data, 0o644))
		}
		gomod := "module realworld/" + m.name + "\n\ngo 1.25.0\n\nrequire " + m.path + " " + m.version + "\n"
		if v == swapped {
			gomod += "\nrequire " + resmtpPath + " " + anyVersion + "\n" +
				"\nreplace " + m.path + " => " + lib + "\n" +
				"\nreplace " + resmtpPath + " => " + repoRoot(t) + "\n"
			seedGoSum(t, dir)
		}
		require.NoError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte(gomod), 0o644))
		bin := filepath.Join(dir, m.name+".bin")
		_, err := goCmd(t, 2*time.Minute, dir, "build", "-o", bin, ".")
		require.NoError(t, err, "building the %s variant", v)
		info, err := buildinfo.ReadFile(bin)
		require.NoError(t, err)
		linked := slices.ContainsFunc(info.Deps, func(d *debug.Module) bool { return d.Path == resmtpPath })
		require.Equal(t, v == swapped, linked, "%s variant: is %s linked in", v, resmtpPath)
		bins[v] = bin
	}
	return bins
}

// step is one outcome line of a scenario program (testdata/report.go).
type step struct {
	Step string
	Err  *errInfo `json:",omitempty"`
}

// errInfo describes an error as net/smtp callers test it.
type errInfo struct {
	Type      string // dynamic type
	Text      string // Error(), with loopback ports replaced by PORT
	EOF       bool   // err == io.EOF
	Textproto bool   // err.(*textproto.Error) succeeds
	Timeout   bool   // err.(net.Error) succeeds and Timeout() is true
}

// result is what the two builds of a program must agree on.
type result struct {
	Steps     []step
	Delivered map[string]int // copies the server accepted, by Subject
	Conns     int            // connections the server accepted
}

// run is one build's run of a scenario.
type run struct {
	result
	elapsed map[string]time.Duration // by step
	srv     *smtptest.Server         // closed
}

var portRE = regexp.MustCompile(`127\.0\.0\.1:\d+`)

// runScenario starts a server with cfg, runs bin against it with args and
// returns what happened.
func runScenario(t *testing.T, bin string, cfg smtptest.Config, args ...string) *run {
	t.Helper()
	srv, err := smtptest.NewServer(cfg)
	require.NoError(t, err)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"-addr", srv.Addr}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	require.NoError(t, cmd.Run(), "%s: stdout:\n%s\nstderr:\n%s", bin, &stdout, &stderr)
	require.NoError(t, srv.Close())

	r := &run{elapsed: map[string]time.Duration{}, srv: srv}
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		var o struct {
			step
			Ms int64
		}
		require.NoError(t, json.Unmarshal(sc.Bytes(), &o), "line %q", sc.Text())
		if o.Err != nil {
			o.Err.Text = portRE.ReplaceAllString(o.Err.Text, "127.0.0.1:PORT")
		}
		r.Steps = append(r.Steps, o.step)
		r.elapsed[o.Step] = time.Duration(o.Ms) * time.Millisecond
	}
	r.Delivered = map[string]int{}
	for _, m := range srv.Messages() {
		r.Delivered[subject(t, m.Data)]++
	}
	r.Conns = srv.Conns()
	return r
}

// subject returns the decoded Subject of a message.
func subject(t *testing.T, data []byte) string {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	require.NoError(t, err)
	s, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	require.NoError(t, err)
	return s
}

// logTranscripts logs every connection's transcript of r's server.
func logTranscripts(t *testing.T, variant string, r *run) {
	t.Helper()
	for i := 1; i <= r.Conns; i++ {
		t.Logf("%s build, server connection %d:\n\t%s", variant, i, strings.Join(r.srv.Transcript(i), "\n\t"))
	}
}

// compare runs m's scenario (args) against both builds, each with a fresh
// server configured by cfg. The published build must give want, which
// validates the scenario; the swapped build must give the same result.
func compare(t *testing.T, m module, cfg smtptest.Config, want result, args ...string) map[string]*run {
	t.Helper()
	bins := binaries(t, m)
	runs := map[string]*run{}
	for _, v := range variants {
		runs[v] = runScenario(t, bins[v], cfg, args...)
		t.Logf("%s build: %s (elapsed %v)", v, jsonString(runs[v].result), runs[v].elapsed)
	}
	if !assert.Equal(t, want, runs[published].result, "the net/smtp build did not behave as the scenario expects") {
		logTranscripts(t, published, runs[published])
	}
	if !assert.Equal(t, runs[published].result, runs[swapped].result, "the swapped build differs from the net/smtp build") {
		logTranscripts(t, published, runs[published])
		logTranscripts(t, swapped, runs[swapped])
	}
	return runs
}

func jsonString(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(b)
}
