// Command render renders a Helm chart the way `helm template` does, for
// tests on machines without helm: Go's text/template with the sprig
// functions (the engine helm uses) plus helm's own include, tpl, required,
// toYaml, fromYaml, toJson, lookup and .Files.Get. Built from Debian's packages in
// GOPATH mode (golang-go, golang-github-masterminds-sprig-dev).
//
//	render -chart helm/ringroute [-values override.json ...] [-release NAME] [-namespace NS] [-api-versions a/v1,b/v2]
//
// Override files are JSON or YAML and merge over the chart's values.yaml
// as helm merges -f files: maps merge key by key, anything else replaces,
// and null deletes the key. Output is a JSON array of
// {"source": "<chart>/templates/<file>", "manifest": "<one document>"}.
// A template error exits 1 with helm's message on stderr.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	"gopkg.in/yaml.v3"
)

type fileList []string

func (f *fileList) String() string     { return strings.Join(*f, ",") }
func (f *fileList) Set(v string) error { *f = append(*f, v); return nil }

// apiVersions is .Capabilities.APIVersions: `.Capabilities.APIVersions.Has "monitoring.coreos.com/v1"`.
type apiVersions []string

func (a apiVersions) Has(version string) bool {
	for _, v := range a {
		if v == version {
			return true
		}
	}
	return false
}

// chartFiles is .Files: the chart's files by path relative to its directory
// (symbolic links followed, as helm's loader follows them).
type chartFiles string

// Get is `.Files.Get "path"`: the file's contents, or "" when there is none.
func (f chartFiles) Get(name string) string {
	data, err := os.ReadFile(filepath.Join(string(f), filepath.FromSlash(name)))
	if err != nil {
		return ""
	}
	return string(data)
}

type output struct {
	Source   string `json:"source"`
	Manifest string `json:"manifest"`
}

func main() {
	chartDir := flag.String("chart", "", "chart directory")
	release := flag.String("release", "release-name", "release name")
	namespace := flag.String("namespace", "default", "release namespace")
	apis := flag.String("api-versions", "", "extra API versions the cluster serves, comma separated")
	var valueFiles fileList
	flag.Var(&valueFiles, "values", "override values file (JSON or YAML), repeatable")
	flag.Parse()
	if err := run(*chartDir, *release, *namespace, *apis, valueFiles); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}

func run(chartDir, release, namespace, apis string, valueFiles []string) error {
	chart, err := readYAML(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		return err
	}
	values, err := readYAML(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		return err
	}
	for _, file := range valueFiles {
		override, err := readYAML(file)
		if err != nil {
			return err
		}
		values = merge(values, override)
	}
	name, _ := chart["name"].(string)
	if name == "" {
		return errors.New("Chart.yaml: name is required")
	}

	versions := apiVersions{"v1", "apps/v1", "policy/v1", "autoscaling/v2"}
	if apis != "" {
		versions = append(versions, strings.Split(apis, ",")...)
	}
	top := map[string]interface{}{
		"Values": values,
		"Release": map[string]interface{}{
			"Name": release, "Namespace": namespace, "Service": "Helm",
			"IsInstall": true, "IsUpgrade": false, "Revision": 1,
		},
		"Chart": chartObject(chart),
		"Files": chartFiles(chartDir),
		"Capabilities": map[string]interface{}{
			"KubeVersion": map[string]interface{}{"Version": "v1.29.0", "Major": "1", "Minor": "29", "GitVersion": "v1.29.0"},
			"APIVersions": versions,
		},
	}

	root := template.New("gotpl").Option("missingkey=zero")
	funcs := sprig.TxtFuncMap()
	delete(funcs, "env") // helm removes these two
	delete(funcs, "expandenv")
	includeDepth := 0
	funcs["include"] = func(name string, data interface{}) (string, error) {
		includeDepth++
		defer func() { includeDepth-- }()
		if includeDepth > 1000 {
			return "", fmt.Errorf("rendering template has a nested reference name: %s", name)
		}
		var buf bytes.Buffer
		err := root.ExecuteTemplate(&buf, name, data)
		return buf.String(), err
	}
	funcs["tpl"] = func(text string, data interface{}) (string, error) {
		clone, err := root.Clone()
		if err != nil {
			return "", err
		}
		t, err := clone.New("tpl").Parse(text)
		if err != nil {
			return "", fmt.Errorf("cannot parse template %q: %w", text, err)
		}
		var buf bytes.Buffer
		if err := t.Execute(&buf, data); err != nil {
			return "", err
		}
		return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
	}
	funcs["required"] = func(message string, value interface{}) (interface{}, error) {
		if value == nil {
			return nil, errors.New(message)
		}
		if s, ok := value.(string); ok && s == "" {
			return nil, errors.New(message)
		}
		return value, nil
	}
	funcs["toYaml"] = toYAML
	funcs["fromYaml"] = func(text string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := yaml.Unmarshal([]byte(text), &m); err != nil {
			m["Error"] = err.Error()
		}
		return normalize(m).(map[string]interface{})
	}
	funcs["toJson"] = func(v interface{}) string {
		b, err := json.Marshal(v)
		if err != nil {
			return ""
		}
		return string(b)
	}
	// No cluster to ask: lookup finds nothing, as in `helm template`.
	funcs["lookup"] = func(string, string, string, string) (map[string]interface{}, error) {
		return map[string]interface{}{}, nil
	}
	root.Funcs(funcs)

	templatesDir := filepath.Join(chartDir, "templates")
	entries, err := os.ReadDir(templatesDir)
	if err != nil {
		return err
	}
	basePath := name + "/templates"
	var names []string
	for _, entry := range entries {
		if entry.IsDir() {
			continue
		}
		text, err := os.ReadFile(filepath.Join(templatesDir, entry.Name()))
		if err != nil {
			return err
		}
		templateName := basePath + "/" + entry.Name()
		if _, err := root.New(templateName).Parse(string(text)); err != nil {
			return fmt.Errorf("parse error in %q: %w", templateName, err)
		}
		names = append(names, templateName)
	}
	sort.Strings(names)

	out := []output{}
	for _, templateName := range names {
		base := filepath.Base(templateName)
		// Partials (_helpers.tpl) are only included; helm renders NOTES.txt too, after install.
		if strings.HasPrefix(base, "_") {
			continue
		}
		data := map[string]interface{}{}
		for k, v := range top {
			data[k] = v
		}
		data["Template"] = map[string]interface{}{"Name": templateName, "BasePath": basePath}
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, templateName, data); err != nil {
			return fmt.Errorf("%s: %w", templateName, err)
		}
		rendered := strings.ReplaceAll(buf.String(), "<no value>", "")
		if base == "NOTES.txt" {
			out = append(out, output{Source: templateName, Manifest: rendered})
			continue
		}
		for _, doc := range splitManifests(rendered) {
			out = append(out, output{Source: templateName, Manifest: doc})
		}
	}
	encoder := json.NewEncoder(os.Stdout)
	encoder.SetIndent("", "  ")
	return encoder.Encode(out)
}

var separator = regexp.MustCompile(`(?:^|\s*\n)---\s*`)

// splitManifests splits a rendered file into YAML documents, dropping empty ones, as helm does.
func splitManifests(text string) []string {
	var docs []string
	for _, doc := range separator.Split(text, -1) {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		docs = append(docs, strings.TrimSpace(doc)+"\n")
	}
	return docs
}

func readYAML(path string) (map[string]interface{}, error) {
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := map[string]interface{}{}
	if err := yaml.Unmarshal(text, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return normalize(m).(map[string]interface{}), nil
}

// normalize gives values the types helm's loader gives them (YAML read
// through JSON): maps with string keys, float64 numbers.
func normalize(v interface{}) interface{} {
	b, err := json.Marshal(v)
	if err != nil {
		return v
	}
	var out interface{}
	if err := json.Unmarshal(b, &out); err != nil {
		return v
	}
	return out
}

// merge lays override over base as helm merges values files.
func merge(base, override map[string]interface{}) map[string]interface{} {
	out := map[string]interface{}{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range override {
		if v == nil {
			delete(out, k)
			continue
		}
		baseMap, baseIsMap := out[k].(map[string]interface{})
		overrideMap, overrideIsMap := v.(map[string]interface{})
		if baseIsMap && overrideIsMap {
			out[k] = merge(baseMap, overrideMap)
		} else {
			out[k] = v
		}
	}
	return out
}

// toYAML is helm's toYaml: JSON-compatible YAML, keys sorted, no trailing newline.
func toYAML(v interface{}) string {
	var decoded interface{}
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	decoder := json.NewDecoder(bytes.NewReader(b))
	decoder.UseNumber()
	if err := decoder.Decode(&decoded); err != nil {
		return ""
	}
	var buf bytes.Buffer
	encoder := yaml.NewEncoder(&buf)
	encoder.SetIndent(2)
	if err := encoder.Encode(numbers(decoded)); err != nil {
		return ""
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

// numbers turns json.Number into int64 where whole, so 8080 prints as 8080, not 8080.0 or "8080".
func numbers(v interface{}) interface{} {
	switch x := v.(type) {
	case map[string]interface{}:
		for k, e := range x {
			x[k] = numbers(e)
		}
	case []interface{}:
		for i, e := range x {
			x[i] = numbers(e)
		}
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	}
	return v
}

// chartObject is .Chart: Chart.yaml's fields with helm's capitalised names.
func chartObject(chart map[string]interface{}) map[string]interface{} {
	out := map[string]interface{}{}
	for k, v := range chart {
		if k == "apiVersion" {
			out["APIVersion"] = v
			continue
		}
		out[strings.ToUpper(k[:1])+k[1:]] = v
	}
	return out
}
