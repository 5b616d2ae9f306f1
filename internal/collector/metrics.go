package collector

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics exports the collector's Status through client_golang: each
// scrape takes one Status and renders every series from it, so /metrics
// and /status never disagree. Labels follow DESIGN.md: device, group,
// uplink, point, interlock (and listener, service for the local servers).
type metrics struct{ c *Collector }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("edgecollector_"+name, help, labels, nil)
}

var (
	mUp             = desc("uptime_seconds", "seconds since this configuration started")
	mInfo           = desc("config_info", "the running config, by the SHA-256 of its file", "config_sha256")
	mDurable        = desc("buffer_durable", "1 when appended messages are synced to disk")
	mMessages       = desc("buffer_messages", "messages stored")
	mBytes          = desc("buffer_bytes", "encoded size of the stored messages")
	mMemQueued      = desc("buffer_memory_queued", "messages held only in memory (disk full)")
	mLastSeq        = desc("last_seq", "highest seq assigned")
	mDropped        = desc("buffer_dropped_total", "messages dropped before every uplink had them")
	mOldest         = desc("buffer_oldest_timestamp_seconds", "creation time of the oldest stored message: the effective retention")
	mQueue          = desc("appender_queue", "messages waiting in the appender queue")
	mQueueDropped   = desc("appender_queue_dropped_total", "messages the full appender queue dropped")
	mBacklog        = desc("uplink_backlog", "messages an uplink has not had acknowledged", "uplink")
	mOldestUnacked  = desc("uplink_oldest_unacked_timestamp_seconds", "creation time of the oldest message an uplink has not had acknowledged", "uplink")
	mConnected      = desc("uplink_connected", "1 while the uplink is connected", "uplink")
	mConnects       = desc("uplink_connects_total", "connections the uplink made", "uplink")
	mSent           = desc("uplink_sent_total", "data messages sent (MQTT publishes, HJ 212 packets), resends included", "uplink")
	mResent         = desc("uplink_resent_total", "data messages sent again", "uplink")
	mAcked          = desc("uplink_acked_total", "seqs acknowledged in the buffer", "uplink")
	mTimeouts       = desc("uplink_timeouts_total", "connections dropped after unanswered resends (HJ 212)", "uplink")
	mTicks          = desc("group_ticks_total", "poll group ticks", "group")
	mOverruns       = desc("group_overruns_total", "ticks that took longer than the group's interval", "group")
	mTick           = desc("group_tick_seconds", "duration of the poll group's ticks", "group")
	mLastTick       = desc("group_last_tick_seconds", "duration of the group's last tick", "group")
	mMaxTick        = desc("group_max_tick_seconds", "longest tick of the group", "group")
	mInterval       = desc("group_interval_seconds", "the group's poll interval", "group")
	mDevReads       = desc("device_reads_total", "reads of the device's points, one a tick", "device", "group")
	mDevFailures    = desc("device_read_failures_total", "reads in which some point came back with an error", "device", "group")
	mDevLastSuccess = desc("device_last_success_timestamp_seconds", "end of the last read without any error (0: never)", "device", "group")
	mDevRequests    = desc("device_requests_total", "Modbus requests sent to the device", "device")
	mPointGood      = desc("point_good", "1 when the point's last reading is good", "point")
	mTripped        = desc("interlock_tripped", "1 while the interlock is tripped", "interlock")
	mBypassed       = desc("interlock_bypassed", "1 while the interlock is bypassed", "interlock")
	mLActive        = desc("listener_connections", "connections open on a local listener", "listener")
	mLMax           = desc("listener_max_connections", "the most connections a local listener serves at once", "listener")
	mLAccepted      = desc("listener_accepted_total", "connections accepted", "listener")
	mLRejected      = desc("listener_rejected_total", "connections closed at once because the listener was full", "listener")
	mLErrors        = desc("listener_accept_errors_total", "failed accepts (retried after a back-off)", "listener")
	mRestarts       = desc("service_restarts_total", "restarts of a supervised service after an error", "service")
	mAuditBytes     = desc("audit_bytes", "size of the audit log's files together")
	mAuditMax       = desc("audit_max_bytes", "audit.max_total_bytes: the oldest audit files are pruned to stay under it")
	mAuditNearFull  = desc("audit_near_full", "1 when the audit store is at 90 % of its cap or more (its oldest file is pruned soon)")
)

var allDescs = []*prometheus.Desc{mUp, mInfo, mDurable, mMessages, mBytes, mMemQueued, mLastSeq, mDropped, mOldest, mQueue, mQueueDropped,
	mBacklog, mOldestUnacked, mConnected, mConnects, mSent, mResent, mAcked, mTimeouts, mTicks, mOverruns, mTick, mLastTick, mMaxTick,
	mInterval, mDevReads, mDevFailures, mDevLastSuccess, mDevRequests, mPointGood, mTripped, mBypassed, mLActive, mLMax, mLAccepted,
	mLRejected, mLErrors, mRestarts, mAuditBytes, mAuditMax, mAuditNearFull}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	s := m.c.Status()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	unix := func(t interface{ IsZero() bool }, secs float64) float64 {
		if t.IsZero() {
			return 0
		}
		return secs
	}
	gauge(mUp, float64(s.UptimeS))
	gauge(mAuditBytes, float64(s.Audit.Bytes))
	gauge(mAuditMax, float64(s.Audit.MaxBytes))
	gauge(mAuditNearFull, b2f(s.Audit.NearFull))
	gauge(mInfo, 1, s.ConfigSHA256)
	b := &s.Buffer
	gauge(mDurable, b2f(b.Durable))
	gauge(mMessages, float64(b.Messages))
	gauge(mBytes, float64(b.Bytes))
	gauge(mMemQueued, float64(b.MemoryQueued))
	gauge(mLastSeq, float64(b.LastSeq))
	counter(mDropped, float64(b.Dropped))
	gauge(mOldest, unix(b.oldest, float64(b.oldest.UnixMilli())/1e3))
	gauge(mQueue, float64(b.Queue))
	counter(mQueueDropped, float64(b.QueueDropped))
	for name, u := range s.Uplinks {
		gauge(mBacklog, float64(u.Backlog), name)
		gauge(mOldestUnacked, unix(u.oldestUnacked, float64(u.oldestUnacked.UnixMilli())/1e3), name)
		gauge(mConnected, b2f(u.Connected), name)
		counter(mConnects, float64(u.Connects), name)
		sent := uint64(0)
		if u.Published != nil {
			sent = *u.Published
		}
		if u.Sent != nil {
			sent = *u.Sent
		}
		counter(mSent, float64(sent), name)
		counter(mResent, float64(u.Resent), name)
		counter(mAcked, float64(u.Acked), name)
		if u.Timeouts != nil {
			counter(mTimeouts, float64(*u.Timeouts), name)
		}
	}
	for _, g := range s.Groups {
		counter(mTicks, float64(g.Ticks), g.Group)
		counter(mOverruns, float64(g.Overruns), g.Group)
		ch <- prometheus.MustNewConstSummary(mTick, g.Ticks, g.TotalTickS, nil, g.Group)
		gauge(mLastTick, g.LastTickS, g.Group)
		gauge(mMaxTick, g.MaxTickS, g.Group)
		gauge(mInterval, g.IntervalS, g.Group)
	}
	requests := map[string]uint64{}
	for _, d := range s.Devices {
		counter(mDevReads, float64(d.Reads), d.Device, d.Group)
		counter(mDevFailures, float64(d.Failures), d.Device, d.Group)
		gauge(mDevLastSuccess, unix(d.lastSuccess, float64(d.lastSuccess.UnixMilli())/1e3), d.Device, d.Group)
		if d.Requests != nil {
			requests[d.Device] = *d.Requests
		}
	}
	for dev, n := range requests {
		counter(mDevRequests, float64(n), dev)
	}
	for _, p := range s.Points {
		gauge(mPointGood, b2f(p.good), p.Point)
	}
	for _, il := range s.Interlocks {
		gauge(mTripped, b2f(il.Tripped), il.Name)
		gauge(mBypassed, b2f(s.taken.Before(il.BypassUntil)), il.Name)
	}
	for _, l := range s.Listeners {
		gauge(mLActive, float64(l.Active), l.Listener)
		gauge(mLMax, float64(l.Max), l.Listener)
		counter(mLAccepted, float64(l.Accepted), l.Listener)
		counter(mLRejected, float64(l.Rejected), l.Listener)
		counter(mLErrors, float64(l.AcceptErrors), l.Listener)
	}
	for _, sv := range s.Services {
		counter(mRestarts, float64(sv.Restarts), sv.Service)
	}
}
