package collector

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"

	"github.com/hazwatch/edgecollector/config"
	"github.com/hazwatch/edgecollector/uplink/hj212"
	"github.com/hazwatch/edgecollector/uplink/jsonfmt"
	"github.com/hazwatch/edgecollector/uplink/mqtt"
)

func (c *Collector) buildMQTT(m *config.MQTT) error {
	var tlsConf *tls.Config
	if m.TLS != nil || strings.HasPrefix(m.URL, "ssl") || strings.HasPrefix(m.URL, "tls") || strings.HasPrefix(m.URL, "mqtts") || strings.HasPrefix(m.URL, "wss") {
		tlsConf = &tls.Config{MinVersion: tls.VersionTLS12}
		if t := m.TLS; t != nil {
			tlsConf.ServerName, tlsConf.InsecureSkipVerify = t.ServerName, t.InsecureSkipVerify
			if t.CA != "" {
				pem, err := os.ReadFile(c.cfg.Resolve(t.CA))
				if err != nil {
					return fmt.Errorf("uplink.mqtt.tls.ca: %w", err)
				}
				pool := x509.NewCertPool()
				if !pool.AppendCertsFromPEM(pem) {
					return fmt.Errorf("uplink.mqtt.tls.ca: %s holds no certificate", t.CA)
				}
				tlsConf.RootCAs = pool
			}
			if t.Cert != "" {
				cert, err := tls.LoadX509KeyPair(c.cfg.Resolve(t.Cert), c.cfg.Resolve(t.Key))
				if err != nil {
					return fmt.Errorf("uplink.mqtt.tls: client certificate: %w", err)
				}
				tlsConf.Certificates = []tls.Certificate{cert}
			}
		}
	}
	password := ""
	switch {
	case m.PasswordFile != "":
		b, err := os.ReadFile(c.cfg.Resolve(m.PasswordFile))
		if err != nil {
			return fmt.Errorf("uplink.mqtt.password_file: %w", err)
		}
		password = strings.TrimRight(string(b), "\r\n")
	case m.PasswordEnv != "":
		password = os.Getenv(m.PasswordEnv)
		if password == "" {
			c.log.Warn("MQTT password variable is empty or unset", "variable", m.PasswordEnv)
		}
	}
	o := mqtt.Opts{Name: "mqtt", URL: m.URL, ClientID: m.ClientID, TopicPrefix: m.TopicPrefix, Username: m.Username, Password: password,
		TLS: tlsConf, KeepAlive: m.KeepAlive.D(), Inflight: m.Inflight, BacklogRate: m.BacklogRate, Heartbeat: m.Heartbeat.D(),
		ReconnectMin: m.ReconnectMin.D(), ReconnectMax: m.ReconnectMax.D(), Store: c.store,
		Encoder: &jsonfmt.Encoder{Enterprise: c.enc.Enterprise, Gateway: c.enc.Gateway, Location: c.loc},
		Status:  func() jsonfmt.Heartbeat { return c.heartbeat("mqtt") }, Meta: c.meta, Logger: c.log}
	if pa := m.PlatformAck; pa != nil && pa.Enabled {
		o.PlatformAck, o.AckTimeout = true, pa.Timeout.D()
	}
	u, err := mqtt.New(o)
	if err != nil {
		return err
	}
	c.mqtt = u
	return nil
}

func (c *Collector) buildHJ212(h *config.HJ212) error {
	o := hj212.DefaultOpts()
	o.Name, o.Address, o.Version, o.ST, o.PW, o.MN = "hj212", h.Address, h.Version, h.ST, h.PW, h.MN
	o.Ack, o.OverTime, o.ReCount, o.Heartbeat = *h.Ack, h.OverTime.D(), h.ReCount, h.Heartbeat.D()
	o.Location, o.Store, o.Logger = c.loc, c.store, c.log
	o.Factors = map[string]string{}
	for _, p := range c.cfg.Points {
		if p.HJ212 != nil && p.HJ212.Factor != "" {
			o.Factors[p.Code] = p.HJ212.Factor
		}
	}
	if e := h.Encryption; e != nil {
		raw, err := os.ReadFile(c.cfg.Resolve(e.KeyFile))
		if err != nil {
			return fmt.Errorf("uplink.hj212.encryption.key_file: %w", err)
		}
		if o.SM4Key, err = hj212.ParseKey(raw); err != nil {
			return fmt.Errorf("uplink.hj212.encryption.key_file: %w", err)
		}
		o.SM4Encoding = e.Encoding
	}
	st, warn := loadPlatformSettings(c.cfg)
	if warn != "" {
		c.log.Warn(warn)
	}
	o.Settings, o.OnSettings, o.Audit = st, c.savePlatformSettings, c.platformAudit
	o.ClockPolicy, o.ClockSynced, o.SetClock = h.AcceptPlatformTime, clockSynced, setClock(h)
	cl, err := hj212.New(o)
	if err != nil {
		return fmt.Errorf("uplink.hj212: %w", err)
	}
	c.hj212 = cl
	c.engine.SetRTDInterval(st.RtdInterval)
	c.engine.SetMinuteInterval(st.MinInterval)
	return nil
}
