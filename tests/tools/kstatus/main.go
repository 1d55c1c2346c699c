// Command kstatus prints the status that sigs.k8s.io/cli-utils' kstatus library (used by Flux,
// kpt and Helm's --wait) computes for each object of a Kubernetes List read from stdin, one JSON
// object per line: {"namespace", "name", "status", "message"}.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type verdict struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Status    string `json:"status"`
	Message   string `json:"message"`
}

func main() {
	raw, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail("reading stdin: %v", err)
	}
	var list unstructured.UnstructuredList
	if err := list.UnmarshalJSON(raw); err != nil {
		fail("stdin is not a Kubernetes List: %v", err)
	}
	out := json.NewEncoder(os.Stdout)
	for i := range list.Items {
		item := &list.Items[i]
		result, err := status.Compute(item)
		if err != nil {
			fail("%s/%s: %v", item.GetNamespace(), item.GetName(), err)
		}
		if err := out.Encode(verdict{item.GetNamespace(), item.GetName(), result.Status.String(), result.Message}); err != nil {
			fail("writing: %v", err)
		}
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "kstatus: "+format+"\n", args...)
	os.Exit(1)
}
