// Package v1alpha1 contains the API of mdm.kubemdm.io: Device, EnrollmentToken
// and DeviceAction.
//
// +kubebuilder:object:generate=true
// +groupName=mdm.kubemdm.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of every kubemdm kind.
	GroupVersion = schema.GroupVersion{Group: "mdm.kubemdm.io", Version: "v1alpha1"}

	// SchemeBuilder registers the kinds of this package with a scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the kinds of this package to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
