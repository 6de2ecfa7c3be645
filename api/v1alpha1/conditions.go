package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// GetConditions gives the conditions helpers access to the status.
func (t *EnrollmentToken) GetConditions() *[]metav1.Condition { return &t.Status.Conditions }

// GetConditions gives the conditions helpers access to the status.
func (d *Device) GetConditions() *[]metav1.Condition { return &d.Status.Conditions }

// GetConditions gives the conditions helpers access to the status.
func (a *DeviceAction) GetConditions() *[]metav1.Condition { return &a.Status.Conditions }

// GetConditions gives the conditions helpers access to the status.
func (c *Configuration) GetConditions() *[]metav1.Condition { return &c.Status.Conditions }
