package health

import (
	"bufio"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/coach-build/coach/pipeline/target"
)

// lddPairs runs ldd on a file and returns soname -> resolved path for the
// lines of the form "name => path (addr)" and "name => not found".
func lddPairs(file string) (map[string]string, error) {
	out, err := exec.Command("ldd", file).Output()
	pairs := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		name, rest, ok := strings.Cut(line, " => ")
		if !ok {
			// "/lib64/ld-linux-x86-64.so.2 (0x...)": the loader itself.
			if f := strings.Fields(line); len(f) == 2 && strings.HasPrefix(f[0], "/") {
				pairs[f[0][strings.LastIndex(f[0], "/")+1:]] = f[0]
			}
			continue
		}
		if rest == "not found" {
			pairs[name] = ""
			continue
		}
		pairs[name] = strings.Fields(rest)[0]
	}
	return pairs, err
}

// TestAgreementWithLdd checks every ELF file of this host's
// /usr/lib/x86_64-linux-gnu and compares each (file, DT_NEEDED) resolution
// with what ldd prints for it.
func TestAgreementWithLdd(t *testing.T) {
	const dir = "/usr/lib/x86_64-linux-gnu"
	if runtime.GOARCH != "amd64" {
		t.Skip("the comparison uses the x86_64 library directory")
	}
	if _, err := exec.LookPath("ldd"); err != nil {
		t.Skip("ldd is not installed")
	}
	tg, _ := target.Builtin("debian-12")
	rep, err := Check(Options{Tree: dir, InstallDir: dir, Sysroot: "/", Target: tg, Arch: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		file  string
		pairs map[string]string
		err   error
	}
	var objs []Object
	for _, o := range rep.Objects {
		if len(o.Needed) > 0 {
			objs = append(objs, o)
		}
	}
	results := make([]result, len(objs))
	var wg sync.WaitGroup
	next := make(chan int)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := range next {
				p, err := lddPairs(dir + "/" + objs[i].File)
				results[i] = result{objs[i].File, p, err}
			}
		})
	}
	for i := range objs {
		next <- i
	}
	close(next)
	wg.Wait()
	pairs, agree, lddFailed := 0, 0, 0
	var diffs []string
	for i, o := range objs {
		r := results[i]
		if len(r.pairs) == 0 {
			lddFailed++ // ldd refused the file (e.g. "not a dynamic executable")
			continue
		}
		for _, n := range o.Needed {
			pairs++
			want, listed := r.pairs[n.Soname]
			if !listed {
				diffs = append(diffs, o.File+": "+n.Soname+": ldd does not list it")
				continue
			}
			if want == n.Resolved {
				agree++
			} else {
				diffs = append(diffs, o.File+": "+n.Soname+": coach "+n.Resolved+", ldd "+want)
			}
		}
	}
	t.Logf("%d ELF files with DT_NEEDED, %d (file, needed) pairs: %d agree, %d differ; ldd refused %d files", len(objs), pairs, agree, len(diffs), lddFailed)
	for i, d := range diffs {
		if i == 30 {
			t.Logf("... and %d more", len(diffs)-30)
			break
		}
		t.Log(d)
	}
	if len(diffs) > 0 {
		t.Errorf("%d pairs differ from ldd", len(diffs))
	}
	if pairs < 500 {
		t.Errorf("only %d pairs compared", pairs)
	}
}
