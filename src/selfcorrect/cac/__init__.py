"""selfcorrect.cac"""
