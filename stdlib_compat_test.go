package smtp_test

// This file runs the Go distribution's own net/smtp tests against this
// package, without copying them into the repository:
//
//  1. $GOROOT/src/net/smtp/smtp_test.go is parsed and rewritten into an
//     external test package (package smtp_test) that dot-imports this module,
//     so that the exported names of net/smtp resolve to ours.
//  2. Every top-level declaration that does not type-check as an external
//     test — because it uses unexported names of net/smtp (c.tls, c.helo(),
//     testHookStartTLS, validateLine, ...) or GOROOT-only packages such as
//     internal/testenv — is dropped, iteratively, until the file is clean.
//     Type checking is done in-process against the *real* net/smtp API (its
//     source in GOROOT), so the set of surviving tests does not depend on the
//     current state of this package: if we lack an exported name, that shows
//     up as a compile failure instead of a silently dropped test.
//  3. The result, plus $GOROOT/src/net/smtp/example_test.go with its import
//     of "net/smtp" swapped for this module, are written to a temporary
//     "_"-prefixed directory inside the module root (so it belongs to this
//     module but is ignored by ./... patterns) and run with `go test`.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/build"
	"go/format"
	"go/parser"
	"go/printer"
	"go/token"
	"go/types"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	stdlibCompatModulePath = "github.com/resmtp/smtp"
	stdlibCompatDirPrefix  = "_stdlibcompat"
	stdlibCompatTestsDir   = "smtptests"
	stdlibCompatExampleDir = "examples"
)

// stdlibCompatRequiredTests must run and pass if they exist in the Go
// installation's smtp_test.go.
var stdlibCompatRequiredTests = []string{
	"TestAuth",
	"TestAuthPlain",
	"TestNewClient",
	"TestNewClient2",
	"TestSendMail",
	"TestSendMailWithAuth",
}

func TestStdlibNetSMTPTests(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: runs the Go distribution's net/smtp tests in a `go test` subprocess (-short)")
	}

	goroot, goBin := stdlibCompatGoroot(t)
	srcDir := filepath.Join(goroot, "src", "net", "smtp")
	testFile := filepath.Join(srcDir, "smtp_test.go")
	exampleFile := filepath.Join(srcDir, "example_test.go")
	for _, f := range []string{testFile, exampleFile} {
		if _, err := os.Stat(f); err != nil {
			t.Skipf("skipping: Go's net/smtp test sources are not available in this installation (GOROOT=%s): %v", goroot, err)
		}
	}

	modRoot := stdlibCompatModuleRoot(t)

	// 1+2: rewrite smtp_test.go and filter out what cannot be an external test.
	res := stdlibCompatFilter(t, goroot, testFile)
	t.Logf("stdlib tests kept (%d): %s", len(res.keptTests), strings.Join(res.keptTests, ", "))
	if len(res.dropped) == 0 {
		t.Logf("stdlib declarations dropped: none")
	}
	for _, d := range res.dropped {
		t.Logf("dropped %s", d)
	}
	require.NotEmpty(t, res.keptTests, "no test function of %s survived the filter", testFile)

	exampleSrc := stdlibCompatRewriteExample(t, exampleFile)

	// 3: write both into a "_"-prefixed temp dir inside the module.
	stdlibCompatSweepStale(t, modRoot)
	tmp, err := os.MkdirTemp(modRoot, stdlibCompatDirPrefix)
	require.NoError(t, err)
	t.Cleanup(func() {
		assert.NoError(t, os.RemoveAll(tmp), "removing %s", tmp)
	})
	tmpRel := filepath.Base(tmp)
	testsPkg := stdlibCompatModulePath + "/" + tmpRel + "/" + stdlibCompatTestsDir
	examplePkg := stdlibCompatModulePath + "/" + tmpRel + "/" + stdlibCompatExampleDir
	// The examples live in their own package so that a compile failure in one
	// file is reported on its own and cannot hide the results of the other
	// (and package-level names can never clash).
	for dir, src := range map[string][]byte{
		stdlibCompatTestsDir:   res.src,
		stdlibCompatExampleDir: exampleSrc,
	} {
		d := filepath.Join(tmp, dir)
		require.NoError(t, os.Mkdir(d, 0o755))
		name := "smtp_test.go"
		if dir == stdlibCompatExampleDir {
			name = "example_test.go"
		}
		require.NoError(t, os.WriteFile(filepath.Join(d, name), src, 0o644))
	}

	// 4: run them.
	// Packages are listed explicitly: "./_dir/..." matches nothing, since
	// wildcards skip directories whose names begin with "_".
	out, runErr := stdlibCompatGoTest(t, goBin, modRoot,
		"./"+tmpRel+"/"+stdlibCompatTestsDir, "./"+tmpRel+"/"+stdlibCompatExampleDir)

	results := map[string]string{} // top-level test/example name -> PASS/FAIL/SKIP
	for _, m := range regexp.MustCompile(`(?m)^--- (PASS|FAIL|SKIP): (\S+)`).FindAllStringSubmatch(out, -1) {
		results[m[2]] = m[1]
	}
	var passed, failed, skipped, missing []string
	for _, name := range res.keptTests {
		switch results[name] {
		case "PASS":
			passed = append(passed, name)
		case "FAIL":
			failed = append(failed, name)
		case "SKIP":
			skipped = append(skipped, name)
		default:
			missing = append(missing, name)
		}
	}
	t.Logf("stdlib tests passed (%d): %s", len(passed), strings.Join(passed, ", "))
	if len(failed) > 0 {
		t.Logf("stdlib tests FAILED (%d): %s", len(failed), strings.Join(failed, ", "))
	}
	if len(skipped) > 0 {
		t.Logf("stdlib tests skipped (%d): %s", len(skipped), strings.Join(skipped, ", "))
	}
	if len(missing) > 0 {
		t.Logf("stdlib tests without a result (%d): %s", len(missing), strings.Join(missing, ", "))
	}

	assert.NoError(t, runErr, "go test of the stdlib net/smtp tests failed:\n%s", out)

	for _, name := range stdlibCompatRequiredTests {
		if !slices.Contains(res.allTests, name) {
			continue // not in this Go version's smtp_test.go
		}
		if assert.Contains(t, res.keptTests, name, "required stdlib test %s was dropped by the filter (it no longer type-checks as an external test)", name) {
			assert.Equal(t, "PASS", results[name], "required stdlib test %s did not pass (\"\": no result)", name)
		}
	}

	// Examples without an "// Output:" comment are compiled but not run;
	// a successful compile shows up as an "ok" line for the package.
	assert.Regexp(t, regexp.MustCompile(`(?m)^ok\s+`+regexp.QuoteMeta(examplePkg)+`(\s|$)`), out,
		"Go's net/smtp example_test.go did not compile/pass against %s (no \"ok\" line for %s)", stdlibCompatModulePath, examplePkg)
	if runErr == nil {
		assert.Regexp(t, regexp.MustCompile(`(?m)^ok\s+`+regexp.QuoteMeta(testsPkg)+`(\s|$)`), out, "no \"ok\" line for %s in go test output", testsPkg)
	}
}

// stdlibCompatGoroot returns the GOROOT holding the net/smtp sources and the
// go command belonging to it.
func stdlibCompatGoroot(t *testing.T) (goroot, goBin string) {
	t.Helper()
	exe := "go"
	if runtime.GOOS == "windows" {
		exe += ".exe"
	}
	//lint:ignore SA1019 runtime.GOROOT is only a first guess; `go env GOROOT` is the fallback.
	if r := runtime.GOROOT(); r != "" {
		if _, err := os.Stat(filepath.Join(r, "src", "net", "smtp")); err == nil {
			goroot = r
		}
	}
	if goroot == "" {
		bin, err := exec.LookPath("go")
		if err != nil {
			t.Skipf("skipping: cannot locate GOROOT (runtime.GOROOT() is empty and no go command in PATH: %v)", err)
		}
		out, err := exec.Command(bin, "env", "GOROOT").Output()
		if err != nil {
			t.Skipf("skipping: `go env GOROOT` failed: %v", err)
		}
		goroot = strings.TrimSpace(string(out))
		if goroot == "" {
			t.Skip("skipping: `go env GOROOT` is empty")
		}
	}
	goBin = filepath.Join(goroot, "bin", exe)
	if _, err := os.Stat(goBin); err != nil {
		bin, err := exec.LookPath("go")
		if err != nil {
			t.Skipf("skipping: no go command found (not in %s/bin nor in PATH)", goroot)
		}
		goBin = bin
	}
	return goroot, goBin
}

// stdlibCompatModuleRoot finds the root of module github.com/resmtp/smtp,
// starting from the test's working directory (the package directory).
func stdlibCompatModuleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	require.NoError(t, err)
	modLine := regexp.MustCompile(`(?m)^module\s+"?` + regexp.QuoteMeta(stdlibCompatModulePath) + `"?\s*$`)
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil {
			require.Regexp(t, modLine, string(data), "%s/go.mod does not declare module %s", dir, stdlibCompatModulePath)
			return dir
		}
		parent := filepath.Dir(dir)
		require.NotEqual(t, dir, parent, "go.mod of module %s not found above the working directory", stdlibCompatModulePath)
		dir = parent
	}
}

// stdlibCompatSweepStale removes temp dirs left behind by runs that were
// killed before their cleanup could run. Only old ones are removed, so that
// concurrent runs are not disturbed.
func stdlibCompatSweepStale(t *testing.T, modRoot string) {
	matches, _ := filepath.Glob(filepath.Join(modRoot, stdlibCompatDirPrefix+"*"))
	for _, m := range matches {
		if fi, err := os.Stat(m); err == nil && fi.IsDir() && time.Since(fi.ModTime()) > time.Hour {
			t.Logf("removing stale %s", m)
			os.RemoveAll(m)
		}
	}
}

type stdlibCompatResult struct {
	src       []byte   // the generated external test file
	allTests  []string // Test functions in the original file
	keptTests []string // Test functions that survived
	dropped   []string // "name (file:line): reason" for every dropped declaration/import
}

// stdlibCompatUnit is a top-level declaration, or one import spec.
type stdlibCompatUnit struct {
	decl ast.Decl        // nil for imports
	imp  *ast.ImportSpec // nil for declarations
}

func stdlibCompatDeclName(d ast.Decl) string {
	switch d := d.(type) {
	case *ast.FuncDecl:
		if d.Recv != nil && len(d.Recv.List) > 0 {
			var buf bytes.Buffer
			printer.Fprint(&buf, token.NewFileSet(), d.Recv.List[0].Type)
			return "method (" + buf.String() + ")." + d.Name.Name
		}
		return "func " + d.Name.Name
	case *ast.GenDecl:
		var names []string
		for _, s := range d.Specs {
			switch s := s.(type) {
			case *ast.ValueSpec:
				for _, n := range s.Names {
					names = append(names, n.Name)
				}
			case *ast.TypeSpec:
				names = append(names, s.Name.Name)
			}
		}
		return d.Tok.String() + " " + strings.Join(names, ", ")
	}
	return fmt.Sprintf("%T", d)
}

func stdlibCompatIsTest(d ast.Decl) (string, bool) {
	fd, ok := d.(*ast.FuncDecl)
	if !ok || fd.Recv != nil || !strings.HasPrefix(fd.Name.Name, "Test") {
		return "", false
	}
	return fd.Name.Name, true
}

// stdlibCompatImportAllowed reports whether an import path of the original
// file may be imported from outside GOROOT.
func stdlibCompatImportAllowed(path string) bool {
	for _, elem := range strings.Split(path, "/") {
		if elem == "internal" || elem == "vendor" {
			return false
		}
	}
	return true
}

func stdlibCompatFilter(t *testing.T, goroot, filename string) stdlibCompatResult {
	t.Helper()
	fset := token.NewFileSet()
	orig, err := parser.ParseFile(fset, filename, nil, parser.ParseComments|parser.SkipObjectResolution)
	require.NoError(t, err, "parsing %s", filename)
	base := filepath.Base(filename)
	where := func(n ast.Node) string {
		p := fset.Position(n.Pos())
		return fmt.Sprintf("%s:%d", base, p.Line)
	}

	var res stdlibCompatResult
	var imports []*ast.ImportSpec
	var decls []ast.Decl
	for _, d := range orig.Decls {
		if gd, ok := d.(*ast.GenDecl); ok && gd.Tok == token.IMPORT {
			for _, s := range gd.Specs {
				is := s.(*ast.ImportSpec)
				path, _ := strconv.Unquote(is.Path.Value)
				if path == "net/smtp" || path == stdlibCompatModulePath {
					continue // replaced by the dot import below
				}
				imports = append(imports, is)
			}
			continue
		}
		if name, ok := stdlibCompatIsTest(d); ok {
			res.allTests = append(res.allTests, name)
		}
		decls = append(decls, d)
	}

	imp := newStdlibCompatImporter(goroot)
	for iter := 0; ; iter++ {
		require.LessOrEqual(t, iter, len(orig.Decls)+len(imports)+2, "filtering %s did not converge", filename)
		src := stdlibCompatRender(t, fset, orig, imports, decls)

		// Type-check exactly what will be written out.
		gfset := token.NewFileSet()
		// The (virtual) file name places it in GOROOT's net/smtp, which is
		// how the importer recognizes the imports of this file.
		gen, err := parser.ParseFile(gfset, filepath.Join(imp.rootDir, "generated_"+base), src, parser.SkipObjectResolution)
		require.NoError(t, err, "parsing generated file:\n%s", src)
		// Map the generated file's nodes back to the units they came from.
		var units []stdlibCompatUnit
		var nodes []ast.Node
		gi := 0
		for _, d := range gen.Decls {
			if gd, ok := d.(*ast.GenDecl); ok && gd.Tok == token.IMPORT {
				// Match by path: formatting may have sorted the specs.
				for _, s := range gd.Specs {
					path, _ := strconv.Unquote(s.(*ast.ImportSpec).Path.Value)
					u := stdlibCompatUnit{} // the dot import
					if path != stdlibCompatModulePath {
						for _, is := range imports {
							if p, _ := strconv.Unquote(is.Path.Value); p == path {
								u.imp = is
								break
							}
						}
						require.NotNil(t, u.imp, "internal error: generated import %q not found", path)
					}
					units = append(units, u)
					nodes = append(nodes, s)
					gi++
				}
				continue
			}
			units = append(units, stdlibCompatUnit{decl: decls[len(units)-gi]})
			nodes = append(nodes, d)
		}
		require.Equal(t, len(imports)+1, gi, "internal error: generated file does not match its declarations (imports)")
		require.Equal(t, len(decls), len(units)-gi, "internal error: generated file does not match its declarations (decls)")

		var errs []types.Error
		info := &types.Info{
			Uses:      map[*ast.Ident]types.Object{},
			Defs:      map[*ast.Ident]types.Object{},
			Implicits: map[ast.Node]types.Object{}, // PkgNameOf needs it for unnamed imports
		}
		conf := types.Config{
			Importer: imp,
			Sizes:    types.SizesFor("gc", build.Default.GOARCH),
			Error:    func(err error) { errs = append(errs, err.(types.Error)) },
		}
		conf.Check("smtp_test", gfset, []*ast.File{gen}, info)
		require.NoError(t, imp.fatal, "type-checking against GOROOT's net/smtp")
		if len(errs) == 0 {
			res.src = src
			break
		}

		usedPkgs := map[types.Object]bool{}
		for _, obj := range info.Uses {
			if pn, ok := obj.(*types.PkgName); ok {
				usedPkgs[pn] = true
			}
		}

		drop := map[int]string{}
		for _, e := range errs {
			idx := -1
			for i, n := range nodes {
				if n.Pos() <= e.Pos && e.Pos < n.End() {
					idx = i
					break
				}
			}
			require.GreaterOrEqual(t, idx, 0, "type error outside any top-level declaration: %v\n%s", e, src)
			u := units[idx]
			if u.decl == nil {
				require.NotNil(t, u.imp, "cannot use the dot import of %s: %v", stdlibCompatModulePath, e)
			}
			if u.imp != nil {
				// Only imports that are unusable outside GOROOT or that
				// became unused may be dropped; anything else is a bug here.
				path, _ := strconv.Unquote(u.imp.Path.Value)
				spec := nodes[idx].(*ast.ImportSpec)
				pn := info.PkgNameOf(spec)
				require.False(t, stdlibCompatImportAllowed(path) && (pn == nil || usedPkgs[pn]), "unexpected error for import %q: %v", path, e)
			}
			if _, ok := drop[idx]; !ok {
				drop[idx] = e.Msg
			}
		}

		var keptImports []*ast.ImportSpec
		var keptDecls []ast.Decl
		for i, u := range units {
			reason, dropped := drop[i]
			switch {
			case u.imp != nil && dropped:
				path, _ := strconv.Unquote(u.imp.Path.Value)
				res.dropped = append(res.dropped, fmt.Sprintf("import %q (%s): %s", path, where(u.imp), reason))
			case u.imp != nil:
				keptImports = append(keptImports, u.imp)
			case u.decl != nil && dropped:
				res.dropped = append(res.dropped, fmt.Sprintf("%s (%s): %s", stdlibCompatDeclName(u.decl), where(u.decl), reason))
			case u.decl != nil:
				keptDecls = append(keptDecls, u.decl)
			}
		}
		imports, decls = keptImports, keptDecls
	}

	for _, d := range decls {
		if name, ok := stdlibCompatIsTest(d); ok {
			res.keptTests = append(res.keptTests, name)
		}
	}
	return res
}

// stdlibCompatRender prints the external-test version of orig with only the
// given imports and declarations.
func stdlibCompatRender(t *testing.T, fset *token.FileSet, orig *ast.File, imports []*ast.ImportSpec, decls []ast.Decl) []byte {
	t.Helper()
	var buf bytes.Buffer
	// Keep the original copyright header.
	for _, cg := range orig.Comments {
		if cg.End() < orig.Package && cg != orig.Doc {
			for _, c := range cg.List {
				buf.WriteString(c.Text + "\n")
			}
			buf.WriteString("\n")
		}
	}
	fmt.Fprintf(&buf, "// Code generated by TestStdlibNetSMTPTests from %s; DO NOT EDIT.\n\n", fset.File(orig.Pos()).Name())
	buf.WriteString("package smtp_test\n\nimport (\n")
	for _, is := range imports {
		buf.WriteString("\t")
		if is.Name != nil {
			buf.WriteString(is.Name.Name + " ")
		}
		buf.WriteString(is.Path.Value + "\n")
	}
	fmt.Fprintf(&buf, "\n\t. %q\n)\n", stdlibCompatModulePath)
	pcfg := printer.Config{Mode: printer.UseSpaces | printer.TabIndent, Tabwidth: 8}
	for _, d := range decls {
		buf.WriteString("\n")
		require.NoError(t, pcfg.Fprint(&buf, fset, &printer.CommentedNode{Node: d, Comments: orig.Comments}), "printing %s", stdlibCompatDeclName(d))
		buf.WriteString("\n")
	}
	src, err := format.Source(buf.Bytes())
	require.NoError(t, err, "formatting generated file:\n%s", buf.Bytes())
	return src
}

// stdlibCompatRewriteExample returns example_test.go with its import of
// net/smtp replaced by this module.
func stdlibCompatRewriteExample(t *testing.T, filename string) []byte {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, filename, nil, parser.ParseComments|parser.SkipObjectResolution)
	require.NoError(t, err, "parsing %s", filename)
	found := false
	for _, is := range f.Imports {
		if path, _ := strconv.Unquote(is.Path.Value); path == "net/smtp" {
			is.Path.Value = strconv.Quote(stdlibCompatModulePath)
			found = true
		}
	}
	require.True(t, found, "%s does not import net/smtp", filename)
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "// Code generated by TestStdlibNetSMTPTests from %s; DO NOT EDIT.\n\n", filename)
	require.NoError(t, format.Node(&buf, fset, f), "printing %s", filename)
	return buf.Bytes()
}

// stdlibCompatImporter type-checks GOROOT packages from source (without
// function bodies). The module's import path is mapped to GOROOT's net/smtp,
// so that declarations are filtered against the real net/smtp API; imports
// that are impossible outside GOROOT (internal/..., vendor/...) fail.
type stdlibCompatImporter struct {
	ctxt    build.Context
	rootDir string // pretend source directory of the file being filtered
	pkgs    map[string]*types.Package
	fatal   error
}

func newStdlibCompatImporter(goroot string) *stdlibCompatImporter {
	ctxt := build.Default
	ctxt.GOROOT = goroot
	ctxt.GOPATH = ""
	ctxt.CgoEnabled = false // pure-Go variants; no cgo processing needed
	return &stdlibCompatImporter{
		ctxt:    ctxt,
		rootDir: filepath.Join(goroot, "src", "net", "smtp"),
		pkgs:    map[string]*types.Package{"unsafe": types.Unsafe},
	}
}

func (imp *stdlibCompatImporter) Import(path string) (*types.Package, error) {
	return imp.ImportFrom(path, imp.rootDir, 0)
}

func (imp *stdlibCompatImporter) ImportFrom(path, dir string, _ types.ImportMode) (*types.Package, error) {
	if dir == imp.rootDir {
		// Imports of the external test file itself.
		if path == stdlibCompatModulePath {
			path = "net/smtp"
		} else if !stdlibCompatImportAllowed(path) {
			return nil, fmt.Errorf("use of GOROOT-only package %q not allowed outside GOROOT", path)
		}
	}
	if path == "unsafe" {
		return types.Unsafe, nil
	}
	bp, err := imp.ctxt.Import(path, dir, 0)
	if err != nil {
		if dir == imp.rootDir && imp.fatal == nil {
			imp.fatal = fmt.Errorf("locating %q: %w", path, err)
		}
		return nil, err
	}
	if !bp.Goroot {
		err := fmt.Errorf("package %q resolved outside GOROOT (%s)", path, bp.Dir)
		if imp.fatal == nil {
			imp.fatal = err
		}
		return nil, err
	}
	if pkg, ok := imp.pkgs[bp.ImportPath]; ok {
		if pkg == nil {
			return nil, fmt.Errorf("import cycle through %q", bp.ImportPath)
		}
		return pkg, nil
	}
	imp.pkgs[bp.ImportPath] = nil // cycle marker

	fset := token.NewFileSet()
	var files []*ast.File
	for _, name := range bp.GoFiles {
		f, err := parser.ParseFile(fset, filepath.Join(bp.Dir, name), nil, parser.SkipObjectResolution)
		if err != nil {
			delete(imp.pkgs, bp.ImportPath)
			return nil, err
		}
		files = append(files, f)
	}
	var firstErr error
	conf := types.Config{
		IgnoreFuncBodies: true,
		Importer:         imp,
		Sizes:            types.SizesFor("gc", imp.ctxt.GOARCH),
		Error: func(err error) {
			if te, ok := err.(types.Error); ok && te.Soft {
				return
			}
			if firstErr == nil {
				firstErr = err
			}
		},
	}
	pkg, _ := conf.Check(bp.ImportPath, fset, files, nil)
	if firstErr != nil {
		delete(imp.pkgs, bp.ImportPath)
		err := fmt.Errorf("type-checking %q from source: %w", bp.ImportPath, firstErr)
		if imp.fatal == nil {
			imp.fatal = err
		}
		return nil, err
	}
	imp.pkgs[bp.ImportPath] = pkg
	return pkg, nil
}

// stdlibCompatGoTest runs `go test` on pkgs in modRoot and returns its
// combined output.
func stdlibCompatGoTest(t *testing.T, goBin, modRoot string, pkgs ...string) (string, error) {
	t.Helper()
	timeout := 3 * time.Minute
	if dl, ok := t.Deadline(); ok {
		if left := time.Until(dl) - 15*time.Second; left < timeout {
			timeout = left
		}
	}
	require.GreaterOrEqual(t, timeout, 30*time.Second, "not enough time left before the test deadline to run go test (%v)", timeout)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	// The inner test binary gets its own, shorter, timeout so that a hang
	// produces a goroutine dump rather than just a kill.
	inner := timeout - 20*time.Second
	args := append([]string{"test", "-count=1", "-v", "-timeout=" + inner.String()}, pkgs...)
	cmd := exec.CommandContext(ctx, goBin, args...)
	cmd.Dir = modRoot
	cmd.Env = append(os.Environ(), "GOFLAGS="+stdlibCompatGOFLAGS(goBin, modRoot))
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	if ctx.Err() != nil {
		err = errors.Join(err, fmt.Errorf("go test timed out after %v", timeout))
	}
	return out.String(), err
}

// stdlibCompatGOFLAGS returns the effective GOFLAGS (environment or go env
// file) reduced to module/build settings, so that test-selection flags of the
// parent (-run, -short, -json, -cover..., -race, ...) cannot leak into the
// subprocess. It is never empty, so that a GOFLAGS from the go env file is
// overridden too.
func stdlibCompatGOFLAGS(goBin, modRoot string) string {
	cmd := exec.Command(goBin, "env", "GOFLAGS")
	cmd.Dir = modRoot
	outb, _ := cmd.Output()
	allowed := map[string]bool{
		"mod": true, "modcacherw": true, "modfile": true, "buildvcs": true,
		"tags": true, "trimpath": true, "overlay": true,
	}
	var keep []string
	for _, f := range strings.Fields(string(outb)) {
		name := strings.TrimLeft(f, "-")
		if i := strings.IndexByte(name, '='); i >= 0 {
			name = name[:i]
		}
		if allowed[name] {
			keep = append(keep, f)
		}
	}
	if len(keep) == 0 {
		keep = []string{"-buildvcs=auto"} // the default; harmless
	}
	return strings.Join(keep, " ")
}
