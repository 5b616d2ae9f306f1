package collector

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hazwatch/edgecollector/edge"
	"github.com/hazwatch/edgecollector/edge/audit"
	"github.com/hazwatch/edgecollector/internal/testpeer"
	"github.com/hazwatch/edgecollector/internal/uplinkschema"
)

// auditLines reads the collector's audit log (the active file).
func auditLines(t *testing.T, r *running) []audit.Entry {
	t.Helper()
	b, err := os.ReadFile(r.cfg.AuditFile())
	if err != nil {
		t.Fatal(err)
	}
	var out []audit.Entry
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var e audit.Entry
		json.Unmarshal([]byte(l), &e)
		out = append(out, e)
	}
	return out
}

// TestControlWritesTheAuditEntryFirst: a reset is written as requested
// before it is carried out and its result after, both with the same id
// and the sender; when the audit log cannot be written, reset, ack,
// bypass, maintenance and reload are refused and say why, and the tripped
// interlock stays tripped although its condition has cleared.
func TestControlWritesTheAuditEntryFirst(t *testing.T) {
	slave := &plantSlave{gas: 600}
	r := runCollector(t, plantConfig(t, startSlave(t, slave), "50", ""), Deps{})
	tripped(t, r.Collector)
	who := "uid 1000 (pid 42) via control socket"
	pair := func(cmd, name, result string) {
		t.Helper()
		var req, res audit.Entry // the last result of cmd, and its request (events come in between)
		for _, e := range auditLines(t, r) {
			if e.Category == "control" && e.Type == cmd && e.Result == "requested" {
				req = e
			} else if e.Category == "control" && e.Type == cmd {
				res = e
			}
		}
		if req.Subject != name || !strings.HasPrefix(res.Result, result) || req.ID != res.ID || req.N >= res.N || req.Source != who || res.Source != who {
			t.Fatalf("the %s's audit entries: %+v then %+v", cmd, req, res)
		}
	}
	if ans := r.Control(context.Background(), Request{Cmd: "ack", Name: "GT-1"}, who); !ans.OK {
		t.Fatalf("ack: %+v", ans)
	}
	pair("ack", "GT-1", "ok")
	if ans := r.Control(context.Background(), Request{Cmd: "reset", Name: "ESD-1"}, who); ans.OK {
		t.Fatalf("reset while the gas is still high: %+v", ans)
	}
	pair("reset", "ESD-1", "refused: ")
	slave.set(100)
	testpeer.Eventually(t, 10*time.Second, "GT-1 back below HH", func() bool { return fmt.Sprint(r.Status().Points[0].Value) == "10" })

	r.audit.Close() // from here on no entry can be written
	for _, req := range []Request{
		{Cmd: "reset", Name: "ESD-1"}, {Cmd: "ack", Name: "GT-1"}, {Cmd: "bypass", Name: "ESD-1", Duration: "1h"},
		{Cmd: "maintenance", Name: "GT-1", On: true, Duration: "1h", Reason: "calibration", Force: true}, {Cmd: "reload"},
	} {
		ans := r.Control(context.Background(), req, who)
		if ans.OK || !strings.Contains(ans.Error, "audit log cannot record it") || !strings.Contains(ans.Error, "closed") {
			t.Errorf("%s with an unwritable audit log: %+v, want a refusal that says why", req.Cmd, ans)
		}
	}
	st := r.Status()
	if !st.Interlocks[0].Tripped || st.Interlocks[0].BypassUntil.After(time.Now()) || st.Points[0].Maintenance != nil {
		t.Fatalf("a refused command was carried out: %+v %+v", st.Interlocks[0], st.Points[0])
	}
	if r.Next() != nil {
		t.Fatal("a refused reload was taken")
	}
}

// TestAuditNearFull: an audit store at 90 % of its cap is a system
// audit_near_full event (valid against the schema) and the metric
// edgecollector_audit_near_full is 1.
func TestAuditNearFull(t *testing.T) {
	var evs events
	path := plantConfig(t, startSlave(t, &plantSlave{gas: 100}), "50", "audit: {max_file_bytes: 4KiB, max_total_bytes: 64KiB}\n")
	r := runCollector(t, path, Deps{OnAppendBatch: evs.batch})
	for i := 0; evs.count(edge.EventSystem, edge.StateAuditNearFull) == 0; i++ {
		if i > 400 {
			t.Fatalf("no audit_near_full after %d entries: %+v", i, r.Status().Audit)
		}
		if _, err := r.audit.Write(audit.Rec{Category: "control", Type: "ack", Subject: "GT-1", Source: "test"}); err != nil {
			t.Fatal(err)
		}
		if r.Status().Audit.NearFull {
			testpeer.Eventually(t, 10*time.Second, "the audit_near_full event", func() bool { return evs.count(edge.EventSystem, edge.StateAuditNearFull) == 1 })
		}
	}
	st := r.Status().Audit
	if !st.NearFull || st.Bytes < 58000 || st.MaxBytes != 64<<10 {
		t.Fatalf("status audit %+v", st)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(&metrics{r.Collector})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "edgecollector_audit_") {
			got[mf.GetName()] = mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	if got["edgecollector_audit_near_full"] != 1 || got["edgecollector_audit_max_bytes"] != 64<<10 || got["edgecollector_audit_bytes"] < 58000 {
		t.Fatalf("audit metrics %v", got)
	}
	evs.mu.Lock()
	var ev edge.Event
	for _, e := range evs.evs {
		if e.State == edge.StateAuditNearFull {
			ev = e
		}
	}
	evs.mu.Unlock()
	body := r.enc.Message(nil, &edge.Message{Seq: 7, Kind: edge.KindEvent, Created: time.Now(), Events: []edge.Event{ev}}, false, time.Now())
	if err := uplinkschema.Validate("event", body); err != nil || !strings.Contains(ev.Message, "oldest file is pruned") {
		t.Fatalf("audit_near_full event %s: %v", body, err)
	}
}
