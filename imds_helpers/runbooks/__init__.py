"""What the runbooks call: parameters, the steps as tables, the primer, where the notebooks are."""
