"""selfcorrect.theory"""
