package config

import (
	"net"
	"strings"
)

// StatusLoopback reports whether a status listen address binds loopback
// only (a bare ":port" does: the collector binds it to 127.0.0.1).
func StatusLoopback(listen string) bool {
	if strings.HasPrefix(listen, ":") {
		return true
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// statusAuth checks the status listener's authentication: an address
// other than loopback must not be open (IEC 62443-4-2 CR 1.1), and the
// files it names must be readable.
func (v *validator) statusAuth() {
	s := v.cfg.Status
	if s.TokenFile != "" {
		v.readable("status.token_file", s.TokenFile, false)
	}
	if s.PasswordFile != "" {
		v.readable("status.password_file", s.PasswordFile, false)
		if s.User == "" {
			v.at("status.password_file", "basic auth needs status.user as well (the name to log in with)")
		}
	} else if s.User != "" {
		v.at("status.user", "basic auth needs status.password_file as well (there is no default password)")
	}
	if t := s.TLS; t != nil {
		if t.Cert == "" || t.Key == "" {
			v.at("status.tls", "HTTPS needs both cert and key")
		}
		if t.Cert != "" {
			v.readable("status.tls.cert", t.Cert, true)
		}
		if t.Key != "" {
			v.readable("status.tls.key", t.Key, true)
		}
	}
	if s.Listen != "" && !StatusLoopback(s.Listen) && s.TokenFile == "" && s.PasswordFile == "" {
		v.at("status.listen", "%q is reachable from the network and the status listener has no authentication (IEC 62443-4-2 CR 1.1): set status.token_file (a bearer token) or status.user with status.password_file, or listen on 127.0.0.1", s.Listen)
	}
}
