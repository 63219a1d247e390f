// Command k8s-validate checks Kubernetes manifests (a multi-document YAML stream on stdin or in
// the files named) against the API types compiled into it: the built-in groups of client-go and
// the Prometheus Operator's monitoring.coreos.com/v1 (ServiceMonitor, PrometheusRule). Each
// document is decoded strictly, so an unknown kind or apiVersion, an unknown or duplicated field
// or a value of the wrong type is an error. The schemas travel in the Go modules: nothing is
// fetched at run time (kubeconform and friends download JSON schemas, which CI cannot reach).
//
// Exit status: 0 when every document is valid, 1 when one is not, 2 on a usage or read error.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

// newDecoder returns a strict decoder knowing the built-in kinds and the monitoring CRDs.
func newDecoder() (runtime.Decoder, error) {
	scheme := runtime.NewScheme()
	if err := clientscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := monitoringv1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	return serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer(), nil
}

// validate decodes every document of stream, returning how many were checked and one error per
// invalid document (named by its position, kind and name).
func validate(decoder runtime.Decoder, source string, stream io.Reader) (int, []error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(stream))
	var problems []error
	checked := 0
	for index := 1; ; index++ {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			problems = append(problems, fmt.Errorf("%s: document %d: %w", source, index, err))
			break
		}
		if isEmpty(doc) {
			continue
		}
		checked++
		obj, gvk, err := decoder.Decode(doc, nil, nil)
		label := describe(doc)
		if err != nil {
			problems = append(problems, fmt.Errorf("%s: document %d (%s): %w", source, index, label, err))
			continue
		}
		accessor, err := meta.Accessor(obj)
		if err != nil || accessor.GetName() == "" {
			problems = append(problems, fmt.Errorf("%s: document %d (%s): %s has no metadata.name", source, index, label, gvk.Kind))
		}
	}
	return checked, problems
}

// isEmpty reports a document holding only comments or whitespace (helm template emits those).
func isEmpty(doc []byte) bool {
	for _, line := range strings.Split(string(doc), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && line != "---" && !strings.HasPrefix(line, "#") {
			return false
		}
	}
	return true
}

// describe names a document by its kind and name, as far as it can be read loosely.
func describe(doc []byte) string {
	var head struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := yaml.Unmarshal(bytes.TrimSpace(doc), &head); err != nil {
		return "unreadable"
	}
	return head.Kind + "/" + head.Metadata.Name
}

func main() {
	decoder, err := newDecoder()
	if err != nil {
		fmt.Fprintln(os.Stderr, "k8s-validate:", err)
		os.Exit(2)
	}
	sources := os.Args[1:]
	if len(sources) == 0 {
		sources = []string{"-"}
	}
	total := 0
	var problems []error
	for _, source := range sources {
		var stream io.Reader = os.Stdin
		if source != "-" {
			file, err := os.Open(source)
			if err != nil {
				fmt.Fprintln(os.Stderr, "k8s-validate:", err)
				os.Exit(2)
			}
			defer file.Close()
			stream = file
		}
		checked, found := validate(decoder, source, stream)
		total += checked
		problems = append(problems, found...)
	}
	for _, problem := range problems {
		fmt.Fprintln(os.Stderr, "invalid:", problem)
	}
	if total == 0 {
		fmt.Fprintln(os.Stderr, "k8s-validate: no document to check")
		os.Exit(1)
	}
	if len(problems) > 0 {
		fmt.Fprintf(os.Stderr, "k8s-validate: %d of %d documents invalid\n", len(problems), total)
		os.Exit(1)
	}
	fmt.Printf("k8s-validate: %d documents valid\n", total)
}
