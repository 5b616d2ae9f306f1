package collector

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/hazwatch/edgecollector/config"
	"github.com/hazwatch/edgecollector/internal/configstore"
)

// ConfigCommand runs `edgecollector config history|diff A B|rollback N`.
func ConfigCommand(cfg *config.Config, sub string, args []string, sock string, w io.Writer) error {
	switch sub {
	case "history":
		return ConfigHistory(cfg, w)
	case "diff":
		return ConfigDiff(cfg, args[0], args[1], w)
	}
	n, err := strconv.Atoi(args[0])
	if err != nil || n < 1 {
		return fmt.Errorf("want a version number from config history, got %q", args[0])
	}
	return ConfigRollback(cfg, n, sock, w)
}

// ConfigHistory prints the configurations the collector of cfg accepted,
// oldest first.
func ConfigHistory(cfg *config.Config, w io.Writer) error {
	vs, err := configstore.New(cfg.Resolve(cfg.Buffer.Dir)).List()
	if err != nil {
		return err
	}
	if len(vs) == 0 {
		fmt.Fprintf(w, "no config versions yet in %s (the collector keeps one at every start and accepted reload)\n", filepath.Join(cfg.Resolve(cfg.Buffer.Dir), "configs"))
		return nil
	}
	for _, v := range vs {
		line := fmt.Sprintf("%4d  %s  %s  %-8s %s", v.N, v.At.Format("2006-01-02 15:04:05 -07:00"), configstore.Short(v.SHA256), v.How, v.By)
		if v.Note != "" {
			line += "  (" + v.Note + ")"
		}
		fmt.Fprintln(w, line)
	}
	return nil
}

// versionConfig reads one side of a diff: a version number, "last" (the
// last accepted) or "file" (the config file as it is now).
func versionConfig(cfg *config.Config, which string) (*config.Config, string, error) {
	if which == "file" {
		c, err := config.Load(cfg.File)
		return c, "the file " + cfg.File, err
	}
	n := 0
	if which != "last" {
		var err error
		if n, err = strconv.Atoi(which); err != nil || n < 1 {
			return nil, "", fmt.Errorf("want a version number (see config history), last or file, got %q", which)
		}
	}
	v, raw, err := configstore.New(cfg.Resolve(cfg.Buffer.Dir)).Get(n)
	if err != nil {
		return nil, "", err
	}
	c, err := config.Parse(cfg.File, raw)
	return c, fmt.Sprintf("version %d (%s, %s by %s)", v.N, configstore.Short(v.SHA256), v.How, v.By), err
}

// ConfigDiff prints what changed from a to b (version numbers, last or
// file): points, alarms, interlocks, devices, buses and sections.
func ConfigDiff(cfg *config.Config, a, b string, w io.Writer) error {
	ca, na, err := versionConfig(cfg, a)
	if err != nil {
		return err
	}
	cb, nb, err := versionConfig(cfg, b)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "from %s\n  to %s\n", na, nb)
	lines := configstore.Diff(ca, cb)
	if len(lines) == 0 {
		fmt.Fprintln(w, "no difference")
	}
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
	return nil
}

// ConfigRollback puts version n back: it must validate, it is written over
// the config file (the caller may edit it; the collector's user need not),
// and the running collector reloads it through the same rules as any
// reload (a change to a tripped or bypassed interlock is refused). When the
// collector refuses, the file is put back as it was.
func ConfigRollback(cfg *config.Config, n int, sock string, w io.Writer) error {
	v, raw, err := configstore.New(cfg.Resolve(cfg.Buffer.Dir)).Get(n)
	if err != nil {
		return err
	}
	if _, err := config.Parse(cfg.File, raw); err != nil {
		return fmt.Errorf("version %d no longer validates (a file it names may be gone):\n%w", n, err)
	}
	old, err := os.ReadFile(cfg.File)
	if err != nil {
		return err
	}
	if err := replaceFile(cfg.File, raw); err != nil {
		return fmt.Errorf("cannot write %s: %w", cfg.File, err)
	}
	ans, err := Call(sock, Request{Cmd: "reload", Reason: fmt.Sprintf("rollback to version %d", n)})
	if err == nil && !ans.OK {
		err = fmt.Errorf("the collector refused it: %s", ans.Error)
	}
	if err != nil {
		if rerr := replaceFile(cfg.File, old); rerr != nil {
			return fmt.Errorf("%w; and %s could not be put back: %v", err, cfg.File, rerr)
		}
		return fmt.Errorf("rollback to version %d: %w (%s is as it was)", n, err, cfg.File)
	}
	fmt.Fprintf(w, "rolled back to version %d (sha256 %s, accepted %s by %s): %s\n", n, configstore.Short(v.SHA256), v.At.Format("2006-01-02 15:04:05"), v.By, ans.Message)
	return nil
}

// replaceFile writes b over path atomically, keeping its mode.
func replaceFile(path string, b []byte) error {
	mode := os.FileMode(0o644)
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm()
	}
	tmp := path + ".rollback.tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
