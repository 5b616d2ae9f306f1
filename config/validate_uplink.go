package config

import (
	"encoding/pem"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"
)

func (v *validator) buffer() {
	b := v.cfg.Buffer
	if b.MaxBytes < 16<<20 {
		v.at("buffer.max_bytes", "want at least 16MiB, got %d bytes", int64(b.MaxBytes))
	}
	if b.MinFree < 0 {
		v.at("buffer.min_free", "must be 0 or more")
	}
	if b.Retention.D() < 30*24*time.Hour {
		v.at("buffer.retention", "records must be kept at least 30 days (720h) by the major-hazard regulation, got %s", b.Retention)
	}
	if b.MemoryQueue < 1 {
		v.at("buffer.memory_queue", "want at least 1 message")
	}
	if b.Queue < 1 {
		v.at("buffer.queue", "want at least 1 message")
	}
	if b.MaxMessageBytes < 1024 || b.MaxMessageBytes > 1<<20 {
		v.at("buffer.max_message_bytes", "want 1024 to 1048576, got %d", b.MaxMessageBytes)
	}
	if ci := b.CommitInterval; ci != nil && (ci.D() < 0 || ci.D() > 10*time.Second) {
		v.at("buffer.commit_interval", "want 0s (sync every tick) to 10s, got %s", *ci)
	}
	if b.Profile != "small" && b.Profile != "default" {
		v.at("buffer.profile", "want small or default, got %q", b.Profile)
	}
}

func (v *validator) uplink() {
	u := v.cfg.Uplink
	if u.MQTT == nil && u.HJ212 == nil {
		v.at("uplink", "required: configure uplink.mqtt or uplink.hj212 (or both); the platform must receive the data")
		return
	}
	if m := u.MQTT; m != nil {
		v.mqtt(m)
	}
	if h := u.HJ212; h != nil {
		v.hj212(h)
	}
}

func (v *validator) mqtt(m *MQTT) {
	p := "uplink.mqtt"
	tlsURL := false
	if m.URL == "" {
		v.at(p+".url", "required: write the broker's URL, e.g. url: ssl://platform.example.cn:8883")
	} else if u, err := url.Parse(m.URL); err != nil || u.Host == "" {
		if strings.Contains(m.URL, "@") { // may hold a password: not echoed
			v.at(p+".url", "want a URL like tcp://host:1883 or ssl://host:8883, without user:password@; give credentials in username and password_env/password_file")
		} else {
			v.at(p+".url", "want a URL like tcp://host:1883 or ssl://host:8883, got %q", m.URL)
		}
	} else {
		if u.User != nil {
			// Never echo it: the point is that the password must not be printed.
			v.at(p+".url", "the URL carries credentials (user:password@ before the host), which would be logged with the URL; write %s and give them in username and password_env/password_file", userinfoFree(u))
		}
		switch u.Scheme {
		case "tcp", "mqtt", "ws":
		case "ssl", "tls", "mqtts", "wss":
			tlsURL = true
		default:
			v.at(p+".url", "unknown scheme %q; write tcp://, ssl://, ws:// or wss://", u.Scheme)
		}
	}
	if strings.ContainsAny(m.TopicPrefix, "+#") || strings.HasPrefix(m.TopicPrefix, "/") || strings.HasSuffix(m.TopicPrefix, "/") {
		v.at(p+".topic_prefix", "%q: no wildcards (+, #) and no leading or trailing '/'", m.TopicPrefix)
	}
	if m.PasswordFile != "" {
		v.readable(p+".password_file", m.PasswordFile, false)
	}
	if m.PasswordFile != "" && m.PasswordEnv != "" {
		v.at(p+".password_env", "give the password in password_file or password_env, not both")
	}
	if (m.PasswordFile != "" || m.PasswordEnv != "") && m.Username == "" {
		v.at(p+".username", "a password is set but no username")
	}
	if t := m.TLS; t != nil {
		if !tlsURL && m.URL != "" {
			v.at(p+".tls", "TLS is configured but the URL is not a TLS one; write ssl://host:8883")
		}
		if t.CA != "" {
			v.readable(p+".tls.ca", t.CA, true)
		}
		if t.Cert != "" {
			v.readable(p+".tls.cert", t.Cert, true)
		}
		if t.Key != "" {
			v.readable(p+".tls.key", t.Key, true)
		}
		if (t.Cert == "") != (t.Key == "") {
			v.at(p+".tls", "mutual TLS needs both cert and key")
		}
		if t.InsecureSkipVerify {
			v.warn(p+".tls.insecure_skip_verify", "the broker's certificate is not checked: anyone on the network path can pose as the platform and read or drop the data; remove it (the system's CAs are then used) or set tls.ca to the platform's CA; skip checks only while commissioning")
		}
	}
	if m.KeepAlive.D() < time.Second {
		v.at(p+".keepalive", "want at least 1s, got %s", m.KeepAlive)
	}
	if m.Inflight < 1 || m.Inflight > 1000 {
		v.at(p+".inflight", "want 1-1000, got %d", m.Inflight)
	}
	if m.BacklogRate < 0 {
		v.at(p+".backlog_rate", "want messages per second, 0 for unlimited")
	}
	if m.Heartbeat.D() < time.Second {
		v.at(p+".heartbeat", "want at least 1s, got %s", m.Heartbeat)
	}
	if m.ReconnectMin <= 0 || m.ReconnectMax < m.ReconnectMin {
		v.at(p+".reconnect_max", "want 0 < reconnect_min <= reconnect_max")
	}
	if m.PlatformAck != nil && m.PlatformAck.Timeout.D() < time.Second {
		v.at(p+".platform_ack.timeout", "want at least 1s, got %s", m.PlatformAck.Timeout)
	}
}

// userinfoFree is u without its credentials.
func userinfoFree(u *url.URL) string {
	c := *u
	c.User = nil
	return c.String()
}

var digitsRE = regexp.MustCompile(`^\d{1,5}$`)

func (v *validator) hj212(h *HJ212) {
	p := "uplink.hj212"
	if h.Address == "" {
		v.at(p+".address", "required: write the platform's host:port")
	} else if _, port, err := net.SplitHostPort(h.Address); err != nil || !validPort(port) {
		v.at(p+".address", "want host:port, got %q", h.Address)
	}
	if h.Version != "2017" && h.Version != "2025" {
		v.at(p+".version", "want \"2017\" or \"2025\", got %q", h.Version)
	}
	if h.MN == "" || len(h.MN) > 24 {
		v.at(p+".mn", "required: the device id (MN) the platform assigned, at most 24 characters")
	}
	if !digitsRE.MatchString(h.ST) {
		v.at(p+".st", "want the system code as digits, e.g. st: \"32\", got %q", h.ST)
	}
	if len(h.PW) > 9 || strings.ContainsAny(h.PW, ";=&,") {
		v.at(p+".pw", "at most 9 characters without ; = & ,")
	}
	if h.OverTime.D() < time.Second || h.ReCount < 1 {
		v.at(p+".overtime", "want overtime >= 1s and recount >= 1")
	}
	switch h.AcceptPlatformTime {
	case "never", "when_unsynced", "always":
	default:
		v.at(p+".accept_platform_time", "want never, when_unsynced or always, got %q", h.AcceptPlatformTime)
	}
	if d := h.RTDInterval.D(); d < 30*time.Second || d > time.Hour || d%time.Second != 0 {
		v.at(p+".rtd_interval", "want whole seconds from 30s to 3600s (HJ 212-2017 RtdInterval), got %s", h.RTDInterval)
	}
	if e := h.Encryption; e != nil {
		if h.Version != "2025" {
			v.at(p+".encryption", "SM4 encryption is an HJ 212-2025 feature; set version: \"2025\"")
		}
		if e.KeyFile == "" {
			v.at(p+".encryption.key_file", "required: a file with the 16-byte SM4 key (raw, or 32 hex digits)")
		} else {
			v.readable(p+".encryption.key_file", e.KeyFile, false)
		}
		if e.Encoding != "raw" && e.Encoding != "hex" {
			v.at(p+".encryption.encoding", "want raw or hex, got %q", e.Encoding)
		}
	}
}

// readable checks that a file named in the config can be read (and, for
// TLS files, holds PEM).
func (v *validator) readable(path, name string, wantPEM bool) {
	full := v.cfg.Resolve(name)
	data, err := os.ReadFile(full)
	if err != nil {
		v.at(path, "cannot read %s: %s; check the path and that the collector's user may read it", full, unwrapPathErr(err))
		return
	}
	if wantPEM {
		if b, _ := pem.Decode(data); b == nil {
			v.at(path, "%s holds no PEM block; want a PEM certificate or key", full)
		}
	}
}

func unwrapPathErr(err error) string {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err.Error()
	}
	return err.Error()
}
