package collector

import (
	"fmt"

	"github.com/hazwatch/edgecollector/config"
	"github.com/hazwatch/edgecollector/edge"
	"github.com/hazwatch/edgecollector/edge/audit"
)

// openAudit opens the audit log with the config's rotation and pruning
// (edge/audit.DefaultOpts for what is not set); a store nearing its cap
// is a system audit_near_full event and a log line.
func (c *Collector) openAudit(cfg *config.Config) error {
	key, err := audit.ReadKey(cfg.Resolve(cfg.Audit.KeyFile))
	if err != nil {
		return err
	}
	o := cfg.AuditOpts()
	o.Key, o.OnNearFull = key, c.auditNearFull
	c.audit, err = audit.New(o)
	return err
}

func (c *Collector) auditNearFull(u audit.Usage) {
	c.log.Warn("audit store near its cap: its oldest file will be pruned", "bytes", u.Bytes, "max_bytes", u.MaxBytes, "files", u.Files, "first_entry", u.First)
	c.systemEvent(edge.StateAuditNearFull, "audit", fmt.Sprintf("audit store at %d of %d bytes (%d files, from entry %d): its oldest file is pruned at the next rotation that needs the room; export it or raise audit.max_total_bytes",
		u.Bytes, u.MaxBytes, u.Files, u.First))
}

// auditRequest writes a control request to the audit log before it is
// carried out (fail closed): an error means the request must be refused.
// It returns the entry's id, which the result entry repeats.
func (c *Collector) auditRequest(req Request, who, detail string) (string, error) {
	if c.audit == nil {
		return "", fmt.Errorf("no audit log is open")
	}
	e, err := c.audit.Write(audit.Rec{Source: who, Category: "control", Type: req.Cmd, Subject: req.Name, Result: "requested", Detail: detail})
	if err != nil && e.N == 0 {
		return "", err
	}
	return e.ID, nil
}

// auditResult writes what became of a request (ok, or refused: why).
func (c *Collector) auditResult(id string, req Request, who, detail string, res error) error {
	r := audit.Rec{ID: id, Source: who, Category: "control", Type: req.Cmd, Subject: req.Name, Result: "ok", Detail: detail}
	if res != nil {
		r.Result = "refused: " + res.Error()
	}
	if _, err := c.audit.Write(r); err != nil {
		c.log.Error("audit log write failed", "err", err)
		return err
	}
	return nil
}

// AuditStatus is the audit store's size against its cap.
type AuditStatus = audit.Usage
