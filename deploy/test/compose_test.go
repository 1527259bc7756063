package deploytest

import (
	"context"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// TestComposeFileLoads loads deploy/docker-compose.yml with the compose-spec
// loader (schema validation, interpolation, merge of the YAML anchors) and
// checks the laptop layout: Kafka and ClickHouse healthy before migrate,
// migrate done before the stages, and a configuration aivis accepts.
func TestComposeFileLoads(t *testing.T) {
	opts, err := cli.NewProjectOptions([]string{"../docker-compose.yml"},
		cli.WithWorkingDirectory(".."), cli.WithEnv([]string{}), cli.WithInterpolation(true))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("loading deploy/docker-compose.yml: %v", err)
	}
	if p.Name != "aivis" {
		t.Errorf("project name %q", p.Name)
	}
	want := []string{"aggregate", "clickhouse", "enrich", "ingest", "kafka", "migrate", "scorer"}
	if got := p.ServiceNames(); !slices.Equal(sortStrings(got), want) {
		t.Fatalf("services %v, want %v", got, want)
	}
	for _, infra := range []string{"kafka", "clickhouse"} {
		if s := p.Services[infra]; s.HealthCheck == nil || len(s.HealthCheck.Test) == 0 {
			t.Errorf("%s has no healthcheck; the stages would start before it serves", infra)
		}
	}
	pom, err := os.ReadFile("../kafka/pom.xml")
	if err != nil {
		t.Fatal(err)
	}
	tested := regexp.MustCompile(`<kafka.version>([^<]+)</kafka.version>`).FindSubmatch(pom)
	if tested == nil {
		t.Fatal("no kafka.version in deploy/kafka/pom.xml")
	}
	if want := "apache/kafka:" + string(tested[1]); p.Services["kafka"].Image != want {
		t.Errorf("kafka image %q, want %s: the version the tests run on", p.Services["kafka"].Image, want)
	}
	if !strings.HasPrefix(p.Services["clickhouse"].Image, "clickhouse/clickhouse-server:") {
		t.Errorf("clickhouse image %q", p.Services["clickhouse"].Image)
	}
	for _, name := range []string{"migrate", "ingest", "enrich", "aggregate", "scorer"} {
		s := p.Services[name]
		if s.Build == nil || s.Build.Dockerfile != "deploy/Dockerfile" {
			t.Errorf("%s is not built from deploy/Dockerfile: %+v", name, s.Build)
		}
		if len(s.Command) != 1 {
			t.Errorf("%s: command %v, want one aivis command", name, s.Command)
			continue
		}
		deps := map[string]string{"kafka": types.ServiceConditionHealthy, "clickhouse": types.ServiceConditionHealthy}
		if name != "migrate" {
			deps["migrate"] = types.ServiceConditionCompletedSuccessfully
		}
		for dep, cond := range deps {
			if got := s.DependsOn[dep].Condition; got != cond {
				t.Errorf("%s depends on %s with %q, want %q", name, dep, got, cond)
			}
		}
		env := map[string]string{}
		for k, v := range s.Environment {
			if v == nil {
				t.Errorf("%s: %s has no value", name, k)
				continue
			}
			env[k] = *v
		}
		if s.Command[0] != "ingest" {
			env["AIVIS_INGEST__ALLOW_ANONYMOUS"] = "true"
		}
		validateConfig(t, "docker-compose "+name, "", nil, env)
		// The consumers are static group members: restarted, they take
		// their partitions back at once.
		if key := map[string]string{"enrich": "AIVIS_ENRICH__INSTANCE_ID", "aggregate": "AIVIS_AGGREGATE__INSTANCE_ID"}[name]; key != "" && env[key] == "" {
			t.Errorf("%s sets no %s", name, key)
		}
	}
	for _, port := range p.Services["ingest"].Ports {
		if port.HostIP != "127.0.0.1" {
			t.Errorf("ingest publishes %s on %q: anonymous ingest must stay on the laptop", port.Published, port.HostIP)
		}
	}
}

// TestDockerfile checks the multi-stage build: a Go build stage on the Go
// version go.mod names, and a runtime stage that copies only the binary.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	mod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	goVersion := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(mod)
	from := regexp.MustCompile(`(?m)^FROM (\S+)(?: AS (\S+))?$`).FindAllSubmatch(b, -1)
	if len(from) != 2 {
		t.Fatalf("want two stages (build, runtime), found %d FROM lines", len(from))
	}
	if img := string(from[0][1]); !strings.HasPrefix(img, "golang:"+string(goVersion[1])) {
		t.Errorf("build stage %s, want golang:%s as go.mod says", img, goVersion[1])
	}
	if !strings.Contains(string(b), "COPY --from="+string(from[0][2])+" /out/aivis") {
		t.Errorf("runtime stage does not copy the binary from the build stage")
	}
	if !strings.Contains(string(b), "-extldflags=-Wl,-z,lazy") {
		t.Errorf("the binary must bind lazily, or it will not start on hosts without the NVIDIA driver")
	}
}

func sortStrings(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
