package config

import (
	"time"

	"github.com/hazwatch/edgecollector/edge/audit"
)

// AuditOpts is the audit log's options: edge/audit.DefaultOpts with the
// audit section's keys that are set (the key itself is read by the caller).
func (c *Config) AuditOpts() audit.Opts {
	o := audit.DefaultOpts()
	o.Path = c.AuditFile()
	a := c.Audit
	if a.MaxFileBytes > 0 {
		o.MaxFileBytes = int64(a.MaxFileBytes)
	}
	if a.MaxFileAge > 0 {
		o.MaxFileAge = a.MaxFileAge.D()
	}
	if a.MaxTotalBytes > 0 {
		o.MaxTotalBytes = int64(a.MaxTotalBytes)
	}
	if a.MaxAge > 0 {
		o.MaxAge = a.MaxAge.D()
	}
	return o
}

func (v *validator) audit() {
	a, o := v.cfg.Audit, v.cfg.AuditOpts()
	if a.KeyFile != "" {
		v.readable("audit.key_file", a.KeyFile, false)
	}
	if o.MaxFileBytes < 4<<10 {
		v.at("audit.max_file_bytes", "want at least 4KiB, got %d bytes", o.MaxFileBytes)
	}
	if o.MaxTotalBytes < 2*o.MaxFileBytes {
		v.at("audit.max_total_bytes", "want at least twice audit.max_file_bytes (%d bytes), got %d bytes; 16 files' worth lets the near-full warning come before each pruning",
			o.MaxFileBytes, o.MaxTotalBytes)
	}
	if a.MaxFileAge < 0 || a.MaxFileAge > 0 && a.MaxFileAge.D() < time.Minute {
		v.at("audit.max_file_age", "want 1m or more, got %s", a.MaxFileAge)
	}
	if a.MaxAge < 0 || a.MaxAge > 0 && a.MaxAge.D() < 30*24*time.Hour {
		v.at("audit.max_age", "audit records must be kept at least 30 days (720h) by the major-hazard regulation, got %s", a.MaxAge)
	}
}
