package configset

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// NewPayloadCache adds to the manager a cache of the Secrets and ConfigMaps
// labelled mdm.kubemdm.io/device-payload=true, the only ones a
// Configuration may carry, and of kubemdm's ControllerRevisions. The manager's own cache holds only kubemdm's
// Secrets (ADR 3); this one holds only what users marked for devices.
func NewPayloadCache(mgr ctrl.Manager) (cache.Cache, error) {
	selector := labels.SelectorFromSet(labels.Set{mdmv1alpha1.LabelDevicePayload: "true"})
	revisions := labels.SelectorFromSet(labels.Set{mdmv1alpha1.LabelManagedBy: mdmv1alpha1.ManagedByValue})
	c, err := cache.New(mgr.GetConfig(), cache.Options{
		Scheme:           mgr.GetScheme(),
		Mapper:           mgr.GetRESTMapper(),
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}:    {Label: selector},
			&corev1.ConfigMap{}: {Label: selector},
			// The settings of earlier revisions, for devices a staged
			// rollout has yet to reach.
			&appsv1.ControllerRevision{}: {Label: revisions},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("creating the device-payload cache: %w", err)
	}
	if err := mgr.Add(c); err != nil {
		return nil, err
	}
	return c, nil
}

// ReaderPayloads reads payloads of one namespace from the payload cache.
// With Direct set, a key missing from the cache is looked up there too, to
// tell an unlabelled object (NotAllowed) from a missing one.
type ReaderPayloads struct {
	Ctx       context.Context
	Cache     client.Reader
	Direct    client.Reader
	Namespace string
}

// Value is the content of a labelled Secret's or ConfigMap's key.
func (p ReaderPayloads) Value(ref Ref) ([]byte, error) {
	_, v, err := p.read(ref)
	return v, err
}

// Fingerprint stands for a key's content in a revision. For a Secret it is
// an HMAC keyed by the Secret's UID, which a person who may read
// Configurations but not Secrets does not know: a plain hash of a short
// password in status.revision could be tested against guesses offline.
func (p ReaderPayloads) Fingerprint(ref Ref) ([]byte, error) {
	obj, v, err := p.read(ref)
	if err != nil {
		return nil, err
	}
	if _, secret := obj.(*corev1.Secret); secret {
		mac := hmac.New(sha256.New, []byte(obj.GetUID()))
		mac.Write(v)
		return mac.Sum(nil), nil
	}
	sum := sha256.Sum256(v)
	return sum[:], nil
}

func (p ReaderPayloads) read(ref Ref) (client.Object, []byte, error) {
	key := client.ObjectKey{Namespace: p.Namespace, Name: ref.Name}
	var obj client.Object = &corev1.Secret{}
	if ref.Kind == "ConfigMap" {
		obj = &corev1.ConfigMap{}
	}
	err := p.Cache.Get(p.Ctx, key, obj)
	if apierrors.IsNotFound(err) && p.Direct != nil {
		err = p.Direct.Get(p.Ctx, key, obj)
	}
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil, &PayloadError{Ref: ref}
	case err != nil:
		return nil, nil, fmt.Errorf("reading %s: %w", ref, err)
	case obj.GetLabels()[mdmv1alpha1.LabelDevicePayload] != "true":
		return nil, nil, &PayloadError{Ref: ref, NotAllowed: true}
	}
	var v []byte
	var ok bool
	switch o := obj.(type) {
	case *corev1.Secret:
		v, ok = o.Data[ref.Key]
	case *corev1.ConfigMap:
		var s string
		if s, ok = o.Data[ref.Key]; ok {
			v = []byte(s)
		} else {
			v, ok = o.BinaryData[ref.Key]
		}
	}
	if !ok {
		return nil, nil, &PayloadError{Ref: ref}
	}
	return obj, v, nil
}
