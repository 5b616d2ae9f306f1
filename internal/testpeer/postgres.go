package testpeer

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// PostgresBin is where Debian's postgresql-15 puts its server programs.
const PostgresBin = "/usr/lib/postgresql/15/bin"

// Postgres is a PostgreSQL 15 cluster of the test's own, in a temp dir, on
// a free loopback port (and a Unix socket in the same dir).
type Postgres struct {
	t    testing.TB
	Dir  string
	Port int
	data string
	log  string
	asPG bool
}

// PostgreSQL initialises and starts a cluster that is stopped and removed
// when the test ends. Run as root, the server runs as the postgres user
// (PostgreSQL refuses to run as root) in a dir owned by it. A missing
// PostgreSQL skips the test, or fails it under CI.
func PostgreSQL(t testing.TB) *Postgres {
	t.Helper()
	if _, err := os.Stat(filepath.Join(PostgresBin, "initdb")); err != nil {
		msg := "PostgreSQL 15 is not installed (" + PostgresBin + "/initdb; install: apt-get install -y postgresql)"
		if os.Getenv("CI") != "" {
			t.Fatal("CI is set and a test peer is missing: " + msg)
		}
		t.Skip(msg)
	}
	// Not t.TempDir: its parents are private to root, and the server
	// runs as postgres.
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	p := &Postgres{t: t, Dir: dir, Port: FreePort(t), data: filepath.Join(dir, "data"), log: filepath.Join(dir, "server.log"), asPG: os.Geteuid() == 0}
	t.Cleanup(func() {
		p.pgCtl("-D", p.data, "-m", "immediate", "-w", "stop")
		os.RemoveAll(dir)
	})
	if p.asPG {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root, PostgreSQL needs the postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	if out, err := p.pgCtl("-D", p.data, "-o", "--auth=trust --no-sync -U postgres -E UTF8 --locale=C", "initdb"); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	p.Start()
	t.Logf("PostgreSQL 15 on 127.0.0.1:%d (initdb and start in %s)", p.Port, time.Since(start).Round(time.Millisecond))
	return p
}

// Start (re)starts the server and waits until it accepts connections.
func (p *Postgres) Start() {
	p.t.Helper()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=100", p.Port, p.Dir)
	if out, err := p.pgCtl("-D", p.data, "-o", opts, "-l", p.log, "-w", "-t", "60", "start"); err != nil {
		p.t.Fatalf("pg_ctl start: %v\n%s\n%s", err, out, p.Log())
	}
}

// Stop shuts the server down (fast: open sessions are ended, committed data
// stays), as an outage of the database.
func (p *Postgres) Stop() {
	p.t.Helper()
	if out, err := p.pgCtl("-D", p.data, "-m", "fast", "-w", "stop"); err != nil {
		p.t.Fatalf("pg_ctl stop: %v\n%s", err, out)
	}
}

// pgCtl runs pg_ctl, as the postgres user when the test runs as root.
func (p *Postgres) pgCtl(args ...string) (string, error) {
	bin := filepath.Join(PostgresBin, "pg_ctl")
	var cmd *exec.Cmd
	if p.asPG {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", bin}, args...)...)
	} else {
		cmd = exec.Command(bin, args...)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// DSN is a URL for the postgres database as the postgres superuser.
func (p *Postgres) DSN() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p.Port)
}

// Log is the server's log so far.
func (p *Postgres) Log() string {
	b, _ := os.ReadFile(p.log)
	return strings.TrimSpace(string(b))
}
