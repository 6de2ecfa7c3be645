// Command kubectl-mdm is the kubectl plugin of kubemdm: kubectl mdm lock
// DEVICE, kubectl mdm devices --not-seen 7d, kubectl mdm attrs patch. It
// writes the same objects a person would with kubectl apply, so RBAC,
// admission and Git ownership apply as they do to YAML.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// exitError ends the plugin with a code of its own: 1 for an error, 2 for a
// refused confirmation, as the help says.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

// session is the cluster and namespace the flags name.
type session struct {
	config    clientcmd.ClientConfig
	client    client.Client
	namespace string
}

func newRoot() *cobra.Command {
	loading := clientcmd.NewDefaultClientConfigLoadingRules()
	overrides := &clientcmd.ConfigOverrides{}
	s := &session{}
	root := &cobra.Command{
		Use:   "kubectl-mdm",
		Short: "Run kubemdm actions and queries from kubectl",
		// kubectl runs kubectl-mdm for "kubectl mdm"; help says so.
		Annotations: map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl mdm"},
		Long: `kubectl mdm runs kubemdm's device actions and queries.

Exit codes: 0 done; 1 an error, a refused action, or a device that cannot run
it (--dry-run); 2 a destructive action that was not confirmed.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			s.config = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(loading, overrides)
			rest, err := s.config.ClientConfig()
			if err != nil {
				return err
			}
			ns, _, err := s.config.Namespace()
			if err != nil {
				return err
			}
			s.namespace = ns
			scheme := runtime.NewScheme()
			if err := clientgoscheme.AddToScheme(scheme); err != nil {
				return err
			}
			if err := mdmv1alpha1.AddToScheme(scheme); err != nil {
				return err
			}
			s.client, err = client.New(rest, client.Options{Scheme: scheme})
			return err
		},
	}
	flags := root.PersistentFlags()
	flags.StringVar(&loading.ExplicitPath, "kubeconfig", "", "Path to the kubeconfig file.")
	flags.StringVar(&overrides.CurrentContext, "context", "", "The kubeconfig context to use.")
	flags.StringVarP(&overrides.Context.Namespace, "namespace", "n", "", "The namespace; the context's when not given.")
	for _, verb := range actionVerbs {
		root.AddCommand(newActionCommand(s, verb))
	}
	root.AddCommand(newWatchCommand(s), newDevicesCommand(s), newAttrsCommand(s), newTokenCommand(s))
	return root
}

func main() {
	if err := newRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		var e *exitError
		if errors.As(err, &e) {
			os.Exit(e.code)
		}
		os.Exit(1)
	}
}
