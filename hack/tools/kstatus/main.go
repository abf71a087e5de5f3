// kstatus prints, for each object it reads, the status kstatus computes for it: the reading of
// sigs.k8s.io/cli-utils/pkg/kstatus/status that kubectl wait's peers, Flux and Helm's watcher use.
//
// Input on stdin: one JSON object, or a JSON list (`kubectl get -o json`). Output: one JSON line
// per object, {"kind", "name", "status", "message"}. Built by hack/build-binaries.sh kstatus.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type line struct {
	Kind    string `json:"kind"`
	Name    string `json:"name"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

func main() {
	data, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kstatus: reading stdin:", err)
		os.Exit(2)
	}
	// As the API machinery decodes objects: whole numbers as int64 (generation, observedGeneration).
	var obj map[string]interface{}
	if err := utiljson.Unmarshal(data, &obj); err != nil {
		fmt.Fprintln(os.Stderr, "kstatus: stdin is not a JSON object:", err)
		os.Exit(2)
	}
	objects := []map[string]interface{}{obj}
	if items, ok := obj["items"].([]interface{}); ok {
		objects = objects[:0]
		for _, item := range items {
			if m, ok := item.(map[string]interface{}); ok {
				objects = append(objects, m)
			}
		}
	}
	out := json.NewEncoder(os.Stdout)
	for _, o := range objects {
		u := &unstructured.Unstructured{Object: o}
		result, err := status.Compute(u)
		if err != nil {
			fmt.Fprintln(os.Stderr, "kstatus:", u.GetKind(), u.GetName(), err)
			os.Exit(1)
		}
		_ = out.Encode(line{u.GetKind(), u.GetName(), result.Status.String(), result.Message})
	}
}
