// Package testpeer starts the real peers the tests talk to: Mosquitto, a
// pymodbus slave, socat pty pairs. A missing peer skips the test on a
// developer's machine and fails it when CI is set, so CI can never skip a
// proof silently. Every process started is stopped when the test ends.
package testpeer

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Python is Debian's interpreter, which has pymodbus (the first python3 on
// PATH may be another one).
const Python = "/usr/bin/python3"

// Need skips (or, under CI, fails) the test when a program is missing.
func Need(t testing.TB, programs ...string) {
	t.Helper()
	for _, p := range programs {
		if _, err := exec.LookPath(p); err != nil {
			missing(t, fmt.Sprintf("%s is not installed", p))
		}
	}
}

// NeedPymodbus checks that Debian's python3 can import pymodbus.
func NeedPymodbus(t testing.TB) {
	t.Helper()
	if err := exec.Command(Python, "-c", "import pymodbus, serial_asyncio").Run(); err != nil {
		missing(t, "pymodbus is not importable by "+Python)
	}
}

func missing(t testing.TB, what string) {
	t.Helper()
	msg := what + " (install: apt-get install -y mosquitto mosquitto-clients python3-pymodbus python3-serial-asyncio mbpoll socat)"
	if os.Getenv("CI") != "" {
		t.Fatal("CI is set and a test peer is missing: " + msg)
	}
	t.Skip(msg)
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// WaitPort waits until something accepts connections on addr.
func WaitPort(t testing.TB, addr string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s after %s: %v", addr, within, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Proc is a process started for a test.
type Proc struct {
	Cmd  *exec.Cmd
	Name string
	out  *lockedBuf
	done chan struct{}
	err  error
}

type lockedBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Start runs a program in its own process group until the test ends.
func Start(t testing.TB, name string, args ...string) *Proc {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = procAttr()
	p := &Proc{Cmd: cmd, Name: filepath.Base(name), out: &lockedBuf{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("output of %s:\n%s", p.Name, p.Output())
		}
	})
	return p
}

// Output is what the process printed so far.
func (p *Proc) Output() string { return p.out.String() }

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Signal sends sig to the process group.
func (p *Proc) Signal(sig syscall.Signal) { syscall.Kill(-p.Cmd.Process.Pid, sig) }

// Stop sends SIGTERM and waits up to 10 s, then kills.
func (p *Proc) Stop() error {
	p.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.Kill()
	}
	return p.err
}

// Kill kills the process group and waits for it.
func (p *Proc) Kill() {
	if p.Exited() {
		return
	}
	p.Signal(syscall.SIGKILL)
	<-p.done
}

// Wait waits for the process to end.
func (p *Proc) Wait(within time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(within):
		return fmt.Errorf("%s still running after %s", p.Name, within)
	}
}

// Broker is a Mosquitto instance on its own loopback port.
type Broker struct {
	t          testing.TB
	Port       int
	dir        string
	persistent bool
	proc       *Proc
	tls        *BrokerTLS
}

// BrokerTLS makes the listener TLS; with RequireCert, clients must present a
// certificate signed by CAFile (mutual TLS).
type BrokerTLS struct {
	CAFile, CertFile, KeyFile string
	RequireCert               bool
}

// MosquittoTLS starts a broker with a TLS listener.
func MosquittoTLS(t testing.TB, tc BrokerTLS) *Broker {
	t.Helper()
	Need(t, "mosquitto")
	b := &Broker{t: t, Port: FreePort(t), dir: t.TempDir(), tls: &tc}
	b.Start()
	return b
}

// Mosquitto starts a broker; persistent keeps its queues across restarts
// (persistence true), so a checking subscriber loses nothing to the test's
// own outages.
func Mosquitto(t testing.TB, persistent bool) *Broker {
	t.Helper()
	Need(t, "mosquitto")
	b := &Broker{t: t, Port: FreePort(t), dir: t.TempDir(), persistent: persistent}
	b.Start()
	return b
}

// URL is the broker's tcp:// (or ssl://) URL.
func (b *Broker) URL() string {
	if b.tls != nil {
		return fmt.Sprintf("ssl://127.0.0.1:%d", b.Port)
	}
	return fmt.Sprintf("tcp://127.0.0.1:%d", b.Port)
}

// Addr is host:port.
func (b *Broker) Addr() string { return fmt.Sprintf("127.0.0.1:%d", b.Port) }

// Start (re)starts the broker.
func (b *Broker) Start() {
	b.t.Helper()
	conf := filepath.Join(b.dir, "mosquitto.conf")
	c := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\nmax_inflight_messages 0\n", b.Port)
	if os.Geteuid() == 0 {
		// Started as root, mosquitto would switch to its own user, which
		// cannot read the test's private temp dir (TLS files, persistence).
		c += "user root\n"
	}
	if b.persistent {
		c += fmt.Sprintf("persistence true\npersistence_location %s/\nautosave_interval 1\n", b.dir)
	}
	if b.tls != nil {
		c += fmt.Sprintf("cafile %s\ncertfile %s\nkeyfile %s\nrequire_certificate %v\n", b.tls.CAFile, b.tls.CertFile, b.tls.KeyFile, b.tls.RequireCert)
	}
	if err := os.WriteFile(conf, []byte(c), 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.proc = Start(b.t, "mosquitto", "-c", conf)
	WaitPort(b.t, b.Addr(), 10*time.Second)
}

// Stop stops the broker with SIGTERM (it saves its persistence file).
func (b *Broker) Stop() { b.proc.Stop() }

// PtyPair starts socat joining two pseudo-terminals, an RS-485 line with a
// device at each end. It returns their paths.
func PtyPair(t testing.TB) (a, b string) {
	t.Helper()
	Need(t, "socat")
	dir := t.TempDir()
	a, b = filepath.Join(dir, "ttyA"), filepath.Join(dir, "ttyB")
	Start(t, "socat", "-d", "-d", "pty,raw,echo=0,link="+a, "pty,raw,echo=0,link="+b)
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, ea := os.Stat(a)
		_, eb := os.Stat(b)
		if ea == nil && eb == nil {
			return a, b
		}
		if time.Now().After(deadline) {
			t.Fatal("socat made no pty pair in 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WaitOutput waits until the process prints a line containing s.
func (p *Proc) WaitOutput(t testing.TB, s string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !strings.Contains(p.Output(), s) {
		if p.Exited() || time.Now().After(deadline) {
			t.Fatalf("%s did not print %q within %s; output:\n%s", p.Name, s, within, p.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// RepoFile returns the path of a file in the repository, from this file's
// location, so tests in any package can find testdata scripts.
func RepoFile(rel string) string {
	_, here, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(here), "..", "..", rel)
}

// Lines scans a process's output line by line (for the kill tests).
func Lines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// Eventually polls cond until it holds, failing the test with what when it
// does not within the time given. It is the one way tests here wait: for a
// positive event, with a generous deadline (the machine may be loaded),
// never a sleep followed by an assertion that something did not happen.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
