package testenv

import (
	"context"

	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Watch calls fn with every event of the objects list selects, in order,
// from now until the returned stop is called: what a test records of the
// writes the apiserver stores.
func Watch(ctx context.Context, cfg *rest.Config, scheme *k8sruntime.Scheme, list client.ObjectList, fn func(watch.Event), opts ...client.ListOption) (stop func(), err error) {
	wc, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	w, err := wc.Watch(ctx, list, opts...)
	if err != nil {
		return nil, err
	}
	go func() {
		for ev := range w.ResultChan() {
			fn(ev)
		}
	}()
	return w.Stop, nil
}
