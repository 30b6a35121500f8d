"""Shared helpers of the concept-prune scripts.

Modules that the command-line front ends import before parsing (``errors``, ``config``,
``concepts``, ``paths``) import neither torch nor diffusers, so ``--help`` and input checks
answer at once; everything else is imported only once the input has been checked.
"""
