package webhook

import (
	"context"
	"fmt"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// requireActionVerb answers Forbidden unless the requester holds the RBAC
// verb named after a destructive action (wipe, retire, deprovision,
// unenroll) on devices in the namespace. what says what the request
// does, for the message.
func requireActionVerb(ctx context.Context, c client.Client, user authenticationv1.UserInfo, namespace string,
	action mdmv1alpha1.ActionType, resource, name string, path *field.Path, what string) error {
	verb := strings.ToLower(string(action))
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: user.Username, UID: user.UID, Groups: user.Groups, Extra: extra(user.Extra),
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: namespace, Verb: verb, Group: mdmv1alpha1.GroupVersion.Group, Resource: "devices",
		},
	}}
	if err := c.Create(ctx, sar); err != nil {
		return apierrors.NewInternalError(fmt.Errorf("checking the %q verb: %w", verb, err))
	}
	if sar.Status.Allowed {
		return nil
	}
	return apierrors.NewForbidden(mdmv1alpha1.GroupVersion.WithResource(resource).GroupResource(), name,
		field.Forbidden(path, fmt.Sprintf("%s needs the %q verb on devices.%s in namespace %s, which %s does not have; the kubemdm-admin role grants it",
			what, verb, mdmv1alpha1.GroupVersion.Group, namespace, user.Username)))
}

func extra(in map[string]authenticationv1.ExtraValue) map[string]authorizationv1.ExtraValue {
	out := map[string]authorizationv1.ExtraValue{}
	for k, v := range in {
		out[k] = authorizationv1.ExtraValue(v)
	}
	return out
}
