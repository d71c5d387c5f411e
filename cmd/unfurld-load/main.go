package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "bare" {
		os.Exit(runBare(os.Args[2:], os.Stderr))
	}
	if len(os.Args) > 1 && os.Args[1] == "handwritten" {
		os.Exit(runHandwritten(os.Args[2:], os.Stderr))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	var code int
	if len(os.Args) > 1 && os.Args[1] == "live" {
		code = runLive(ctx, os.Args[2:], os.Stdout, os.Stderr)
	} else {
		code = run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	}
	stop()
	os.Exit(code)
}

// options are the flags of a run.
type options struct {
	bin         string
	duration    time.Duration
	concurrency int
	latency     time.Duration
	rounds      int
	maxRequests int
	scenarios   string
	store       string
}

func parseOptions(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("unfurld-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: unfurld-load [flags]\n       unfurld-load bare --listen 127.0.0.1:PORT --body FILE\n\nflags:\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&o.bin, "bin", "", "unfurld `binary` to measure (default: go build ./cmd/unfurld into a temporary directory)")
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "measured load `time` per side of each scenario")
	fs.IntVar(&o.concurrency, "concurrency", 64, "concurrent keep-alive `workers`")
	fs.DurationVar(&o.latency, "latency", 50*time.Millisecond, "fake upstream `latency` in scenarios b and d")
	fs.IntVar(&o.rounds, "rounds", 2, "alternations of the two sides within a scenario")
	fs.IntVar(&o.maxRequests, "max-requests", 1_000_000, "cap on requests per side per round")
	fs.StringVar(&o.scenarios, "scenarios", "abcde", "`letters` of the scenarios to run (a warm, b overhead, c no cache, d collapse, e hand-written handler; f warm and g no cache on PostgreSQL against bbolt)")
	fs.StringVar(&o.store, "driver", "bolt", "storage `driver` of the unfurld under scenarios a to e: bolt, or postgres on a throwaway cluster this run starts (f and g always run both)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case o.duration <= 0 || o.duration > 10*time.Minute:
		return o, errors.New("--duration must be between 0 and 10m")
	case o.concurrency < 1 || o.concurrency > 4096:
		return o, errors.New("--concurrency must be between 1 and 4096")
	case o.latency < 0 || o.latency > 5*time.Second:
		return o, errors.New("--latency must be between 0 and 5s")
	case o.rounds < 1 || o.rounds > 100:
		return o, errors.New("--rounds must be between 1 and 100")
	case o.maxRequests < o.concurrency:
		return o, errors.New("--max-requests must be at least --concurrency")
	case o.scenarios == "" || strings.Trim(o.scenarios, "abcdefg") != "":
		return o, errors.New("--scenarios takes letters among a, b, c, d, e, f and g")
	case o.store != "bolt" && o.store != "postgres":
		return o, errors.New("--driver is bolt or postgres")
	}
	return o, nil
}

// run sets everything up, runs the four scenarios and prints the report.
// Setup failures stop the run; a scenario's failed requests are reported
// and make the exit status non-zero, missed targets do not.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	opts, err := parseOptions(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "unfurld-load: %v\n", err)
		}
		return exitUsage
	}
	progress := func(format string, a ...any) {
		fmt.Fprintf(stderr, "unfurld-load: "+format+"\n", a...)
	}

	// Deferred in this order so that children stop first, then the fake
	// upstream, then the temporary directory goes.
	dir, err := os.MkdirTemp("", "unfurld-load-")
	if err != nil {
		fmt.Fprintf(stderr, "unfurld-load: %v\n", err)
		return exitFailure
	}
	defer func() { _ = os.RemoveAll(dir) }()
	fake, err := startFake()
	if err != nil {
		fmt.Fprintf(stderr, "unfurld-load: %v\n", err)
		return exitFailure
	}
	defer fake.close()
	pg := &pgDatabases{}
	defer pg.stop()
	cs := &children{}
	defer cs.stopAll()

	bn := &bench{
		opts: opts, fake: fake, progress: progress, rep: &report{}, pg: pg,
		load: &loader{concurrency: opts.concurrency, perWorker: opts.maxRequests / opts.concurrency},
	}
	err = bn.all(ctx, cs, dir)
	cs.stopAll()
	pg.stop()
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "unfurld-load: interrupted")
		return exitFailure
	}
	bn.rep.print(stdout, bn.header())
	if err != nil {
		fmt.Fprintf(stderr, "unfurld-load: %v\n", err)
		return exitFailure
	}
	if bn.rep.failed() {
		return exitFailure
	}
	return exitOK
}

// all runs the scenarios: a and d on a server with the cache on, then b
// and c on one with the cache off. Request errors are collected so that
// every scenario still runs; a setup error ends the run.
func (bn *bench) all(ctx context.Context, cs *children, dir string) error {
	if bn.opts.bin == "" {
		bn.progress("building ./cmd/unfurld")
		bin, err := buildUnfurld(ctx, dir)
		if err != nil {
			return err
		}
		bn.opts.bin = bin
	}
	var reqErrs []error
	want := func(s string) bool { return strings.Contains(bn.opts.scenarios, s) }

	if want("a") || want("d") {
		bn.progress("starting unfurld with the cache on")
		dsn, err := bn.dsn(ctx)
		if err != nil {
			return err
		}
		cached, err := startUnfurld(ctx, cs, bn.opts.bin, dir, "cached", bn.fake.URL, "10m", dsn)
		if err != nil {
			return err
		}
		if want("a") {
			reqErrs = append(reqErrs, bn.warm(ctx, cs, cached, dir))
		}
		if want("d") {
			reqErrs = append(reqErrs, bn.collapse(ctx, cached))
		}
		bn.notePeakRSS("cached server", cached)
		cached.stop(10 * time.Second)
	}

	if want("b") || want("c") || want("e") {
		bn.progress("starting unfurld with the cache off")
		dsn, err := bn.dsn(ctx)
		if err != nil {
			return err
		}
		uncached, err := startUnfurld(ctx, cs, bn.opts.bin, dir, "uncached", bn.fake.URL, "0s", dsn)
		if err != nil {
			return err
		}
		if want("b") {
			reqErrs = append(reqErrs, bn.overhead(ctx, uncached))
		}
		if want("c") {
			reqErrs = append(reqErrs, bn.cold(ctx, uncached))
		}
		if want("e") {
			hw, err := startHandwritten(ctx, cs, bn.fake.URL, uncached.token)
			if err != nil {
				return err
			}
			reqErrs = append(reqErrs, bn.versusHandwritten(ctx, uncached, hw))
			hw.stop(5 * time.Second)
		}
		bn.notePeakRSS("uncached server", uncached)
		uncached.stop(10 * time.Second)
	}
	for _, s := range []struct {
		letter string
		warm   bool
	}{{"f", true}, {"g", false}} {
		if want(s.letter) {
			reqErrs = append(reqErrs, bn.pgVersusBolt(ctx, cs, dir, s.warm))
		}
	}
	return errors.Join(reqErrs...)
}

// dsn is the database of a server under scenarios a to e: none (bbolt)
// unless --store postgres, then a fresh one.
func (bn *bench) dsn(ctx context.Context) (string, error) {
	if bn.opts.store != "postgres" {
		return "", nil
	}
	return bn.pg.database(ctx)
}

// notePeakRSS records the most memory the server held during its
// scenarios, read before it stops.
func (bn *bench) notePeakRSS(name string, u *unfurldServer) {
	if rss, ok := peakRSS(u.cmd.Process.Pid); ok {
		bn.rep.note(name, fmt.Sprintf("peak RSS %.1f MiB", float64(rss)/(1<<20)))
	}
}

// header describes the run, since absolute figures mean little without
// the machine and the settings.
func (bn *bench) header() []string {
	o := bn.opts
	return []string{
		fmt.Sprintf("unfurld-load %s  %s %s/%s  NumCPU=%d GOMAXPROCS=%d", time.Now().UTC().Format(time.RFC3339),
			runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0)),
		fmt.Sprintf("binary %s, store under a-e: %s", o.bin, o.store),
		fmt.Sprintf("%d keep-alive workers, %s measured per side in %d alternating rounds (+ warm-up), fake upstream latency %s in b and d",
			o.concurrency, o.duration, o.rounds, o.latency),
		fmt.Sprintf("upstream body %d bytes; everything on 127.0.0.1; load generator and fake upstream share this process", len(issueJSON)),
		"targets are ratios or differences measured in this same run; a FAIL is a missed target, not an error",
	}
}
