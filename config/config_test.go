package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestSampleValidates(t *testing.T) {
	cfg, err := Parse("sample.yaml", Sample)
	if err != nil {
		t.Fatalf("the README's sample config does not validate:\n%v", err)
	}
	if len(cfg.Points) < 5 || len(cfg.Interlocks) < 2 {
		t.Fatalf("sample lost its points or interlocks: %d points, %d interlocks", len(cfg.Points), len(cfg.Interlocks))
	}
}

func TestDemoValidates(t *testing.T) {
	r := strings.NewReplacer("${PLC_ADDR}", "127.0.0.1:15020", "${GAS_ADDR}", "127.0.0.1:15021",
		"${MQTT_URL}", "tcp://127.0.0.1:11883", "${DATA_DIR}", t.TempDir())
	if _, err := Parse("demo.yaml", []byte(r.Replace(string(Demo)))); err != nil {
		t.Fatalf("demo config does not validate:\n%v", err)
	}
}

// TestReadmeCarriesSample keeps the README's documented sample identical to
// the embedded one, so the docs cannot rot.
func TestReadmeCarriesSample(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "```yaml\n"+string(Sample)+"```") {
		t.Fatal("README.md does not carry config/sample.yaml verbatim in a ```yaml block; copy it in")
	}
}

// TestURLCredentialsNeverEchoed: a refused MQTT URL that may hold a
// password is not printed back.
func TestURLCredentialsNeverEchoed(t *testing.T) {
	for _, u := range []string{"tcp://gw01:s3cret@platform:1883", "tcp://gw01:s3c ret@platform:1883", "tcp://gw01:s3cret@"} {
		_, err := Parse("c.yaml", []byte("gateway: {enterprise: E1, code: GW1}\nuplink: {mqtt: {url: \""+u+"\"}}\n"))
		if err == nil || strings.Contains(err.Error(), "s3c") {
			t.Errorf("%s: want a refusal without the password, got %v", u, err)
		}
	}
}

// TestScalarFastPathIsYAML: the plain spellings decoded without n.Decode
// give what n.Decode gives, and every other spelling still goes to it.
func TestScalarFastPathIsYAML(t *testing.T) {
	for _, v := range []string{"0", "7", "-3", "12", "010", "0x76", "0o17", "+3", "1_000", "1e3", "2.5", "-0.5", "0.25",
		".5", "5.", "1.2.3", ".inf", "-.Inf", ".nan", "true", "false", "True", "TRUE", "yes", "on", "~", "", "\"3\"", "'true'",
		"9223372036854775807", "9223372036854775808", "-9223372036854775808", "1e400", "00.5", "-"} {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte("v: "+v+"\n"), &doc); err != nil {
			continue // not a value (e.g. "-")
		}
		n := doc.Content[0].Content[1]
		var b, wb bool
		var i, wi int64
		var f, wf float64
		if ok, want := decodeBool(n, &b), n.Decode(&wb) == nil; ok != want || b != wb {
			t.Errorf("bool %q: %v %v, n.Decode %v %v", v, b, ok, wb, want)
		}
		if ok, want := decodeInt(n, &i), n.Decode(&wi) == nil; ok != want || i != wi {
			t.Errorf("int %q: %v %v, n.Decode %v %v", v, i, ok, wi, want)
		}
		if ok, want := decodeFloat(n, &f), n.Decode(&wf) == nil; ok != want || (f != wf && !(f != f && wf != wf)) {
			t.Errorf("float %q: %v %v, n.Decode %v %v", v, f, ok, wf, want)
		}
	}
}
